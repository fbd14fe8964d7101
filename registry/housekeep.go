package registry

import (
	"context"
)

func (s *Store) housekeepLoop(ctx context.Context) {}
