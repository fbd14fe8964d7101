// Package e2e runs the built mcp-authz binary as a child process between a
// real MCP client and the demo MCP server, with an Envoy-shaped proxy in
// front, and restarts and kills it on purpose.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the mcp-authz executable built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcp-authz-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mcp-authz")
	build := exec.Command("go", "build", "-o", binary, "../cmd/mcp-authz")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mcp-authz:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// touchSources opens every Go source and module file of the repository so
// that `go test` counts them as inputs of this package: the binary is built
// by a subprocess, and without this a cached e2e result would survive a
// change to the code it tests.
func touchSources(root string) {
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(path); ext == ".go" || ext == ".mod" || ext == ".sum" {
			if f, err := os.Open(path); err == nil {
				f.Close()
			}
		}
		return nil
	})
}

var touchOnce sync.Once

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// authzProc is one mcp-authz child process configuration that can be
// started, stopped, killed and started again on the same data directory.
type authzProc struct {
	t           *testing.T
	dataDir     string
	httpPort    int
	grpcPort    int
	metricsPort int
	args        []string
	env         []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// newAuthzProc prepares (but does not start) mcp-authz serving resources,
// with the admin password "admin-password".
func newAuthzProc(t *testing.T, resources string, extra ...string) *authzProc {
	t.Helper()
	// Inputs are only recorded once tests run, not in TestMain.
	touchOnce.Do(func() { touchSources("..") })
	p := &authzProc{
		t:           t,
		dataDir:     filepath.Join(t.TempDir(), "data"),
		httpPort:    freePort(t),
		grpcPort:    freePort(t),
		metricsPort: freePort(t),
	}
	p.args = append([]string{"serve",
		"--data-dir", p.dataDir,
		"--issuer", p.issuer(),
		"--resources", resources,
		"--http-addr", "127.0.0.1:" + strconv.Itoa(p.httpPort),
		"--grpc-addr", "127.0.0.1:" + strconv.Itoa(p.grpcPort),
		"--admin-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:" + strconv.Itoa(p.metricsPort),
		"--log-level", "debug",
		// Every test client comes from 127.0.0.1; the limits have their
		// own tests in authz/oauth and authz/ratelimit.
		"--rate-limit-register", "off",
		"--rate-limit-token", "off",
		"--rate-limit-login", "off",
		"--rate-limit-authorize", "off",
	}, extra...)
	p.env = append(os.Environ(), "MCP_AUTHZ_ADMIN_PASSWORD=admin-password")
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("mcp-authz logs:\n%s", p.logs)
			p.mu.Unlock()
		}
	})
	return p
}

func (p *authzProc) issuer() string { return fmt.Sprintf("http://127.0.0.1:%d", p.httpPort) }

func (p *authzProc) grpcAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.grpcPort) }

// start runs the binary and waits until /readyz answers 200.
func (p *authzProc) start() {
	p.t.Helper()
	p.mu.Lock()
	if p.logs == nil {
		p.logs = &bytes.Buffer{}
	}
	fmt.Fprintf(p.logs, "---- start %s\n", time.Now().Format(time.TimeOnly))
	cmd := exec.Command(binary, p.args...)
	cmd.Env = p.env
	// If the test binary itself is killed, the server must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = &lockedWriter{mu: &p.mu, w: p.logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatalf("starting mcp-authz: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			p.t.Fatalf("mcp-authz exited during start: %v\n%s", cmd.ProcessState, p.logText())
		default:
		}
		resp, err := http.Get(p.issuer() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("mcp-authz not ready after 30s\n%s", p.logText())
}

// stop ends the process with SIGTERM and waits for it.
func (p *authzProc) stop() { p.signal(syscall.SIGTERM) }

// kill ends the process with SIGKILL and waits for it.
func (p *authzProc) kill() { p.signal(syscall.SIGKILL) }

func (p *authzProc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// restart stops the process gracefully and starts it again.
func (p *authzProc) restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

func (p *authzProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// cli runs an mcp-authz subcommand against the same data directory and
// returns its standard output.
func (p *authzProc) cli(ctx context.Context, args ...string) ([]byte, error) {
	if args[0] == "clients" {
		// Flags go between the command and its verb.
		args = append([]string{args[0], "--data-dir", p.dataDir}, args[1:]...)
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("mcp-authz %v: %w: %s", args, err, stderr.String())
	}
	return out, nil
}

// clientIDs lists the registered client ids with `mcp-authz clients list`.
func (p *authzProc) clientIDs(ctx context.Context) (map[string]bool, error) {
	out, err := p.cli(ctx, "clients", "list")
	if err != nil {
		return nil, err
	}
	var list []struct {
		ID string `json:"client_id"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("parsing clients list %q: %w", out, err)
	}
	ids := map[string]bool{}
	for _, c := range list {
		ids[c.ID] = true
	}
	return ids, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
