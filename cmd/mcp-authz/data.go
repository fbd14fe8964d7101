package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/mcp-authz/mcp-authz/registry"
)

// data runs `mcp-authz data verify|dump|compact DIR`: the operator's view of
// a data directory, usable without a running server.
func data(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("data: want verify DIR, dump DIR or compact DIR")
	}
	verb, dir := args[0], args[1]
	switch verb {
	case "verify":
		rep, err := registry.Verify(dir)
		if err != nil {
			return fmt.Errorf("verifying %s: %w", dir, err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if !rep.OK() {
			return fmt.Errorf("verifying %s: %d problem(s) would stop the server from "+
				"starting; see above, or start with --repair", dir, len(rep.Problems))
		}
		return nil
	case "dump":
		return registry.Dump(dir, stdout)
	case "compact":
		if err := registry.Compact(ctx, dir); err != nil {
			return fmt.Errorf("compacting %s: %w", dir, err)
		}
		_, err := fmt.Fprintf(stdout, "compacted %s\n", dir)
		return err
	default:
		return fmt.Errorf("data %s: want verify DIR, dump DIR or compact DIR", verb)
	}
}
