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
// DIR defaults to the configured data directory (--data-dir before the verb,
// MCP_AUTHZ_DATA_DIR, the file, ./data).
func data(ctx context.Context, args []string, getenv func(string) string,
	stdout io.Writer) error {
	cfg, rest, err := loadConfig(args, getenv, nil)
	if err != nil {
		return err
	}
	if len(rest) < 1 || len(rest) > 2 {
		return errors.New("data: want verify [DIR], dump [DIR] or compact [DIR]")
	}
	verb, dir := rest[0], cfg.DataDir
	if len(rest) == 2 {
		dir = rest[1]
	}
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
		switch {
		case !rep.OK():
			return fmt.Errorf("verifying %s: %d problem(s), see above; the server refuses to "+
				"start on damage it needs and passes over damaged older copies; serve --repair "+
				"sets damage aside and keeps what verifies", dir, len(rep.Problems))
		case len(rep.Problems) > 0:
			return fmt.Errorf("verifying %s: %d problem(s) that do not stop a start, see "+
				"above: a torn final write or a leftover file (the next start removes them; "+
				"beside a running server, a write in progress), or an older snapshot that can "+
				"no longer serve as a fallback", dir, len(rep.Problems))
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
		return fmt.Errorf("data %s: want verify [DIR], dump [DIR] or compact [DIR]", verb)
	}
}
