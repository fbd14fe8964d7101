package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/admin"
	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/metrics"
	"github.com/mcp-authz/mcp-authz/registry"
)

// housekeepInterval is how often expired codes, refresh tokens and
// revocation entries are dropped. Clients are never dropped.
const housekeepInterval = 10 * time.Minute

// shutdownGrace bounds how long in-flight requests get at shutdown.
const shutdownGrace = 5 * time.Second

// serve runs the authorization server until ctx is done. The configuration
// and the tokens file are checked and every listener is bound before the
// data directory is opened, and the admin user, whose generated password is
// shown only once, is created last.
//
// What only oauth.NewServer checks (pre-registered clients' secrets, seeded
// metadata documents) is found after the registry is opened, which may by
// then hold a new signing key. An exported oauth check that needs no store
// would let it move before the open.
func serve(ctx context.Context, args []string, getenv func(string) string,
	logOut io.Writer) error {
	var repair bool
	cfg, rest, err := loadConfig(args, getenv, func(fs *flag.FlagSet) {
		repairFlag(fs, &repair)
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected arguments %q (a flag's value must follow it "+
			"directly; boolean flags take --name=false)", rest)
	}
	if err := cfg.readFiles(); err != nil {
		return err
	}
	if cfg.AdminPassword != "" {
		// Checked before anything is written, as set-password checks it.
		if err := oauth.CheckPassword(cfg.AdminPassword); err != nil {
			return fmt.Errorf("%sADMIN_PASSWORD: %w", envPrefix, err)
		}
	}
	logger, err := newLogger(cfg, logOut)
	if err != nil {
		return err
	}
	logger.Info("mcp-authz starting", cfg.logAttrs(repair)...)
	for _, w := range cfg.warnings() {
		logger.Warn(w)
	}
	if v := getenv(envPrefix + "REPAIR"); v != "" && !repair {
		logger.Warn(envPrefix + "REPAIR is not read: repairing is decided per start, " +
			"with the --repair flag")
	}

	lns, err := listenAll(cfg.listeners())
	if err != nil {
		return err
	}
	// Serving closes them too; closing twice is harmless.
	defer closeAll(lns)

	m := metrics.New()
	store, err := registry.Open(ctx, cfg.DataDir, registry.Options{
		Logger:            logger,
		Repair:            repair,
		HousekeepInterval: housekeepInterval,
		SnapshotRecords:   cfg.SnapshotRecords,
		OnFsync:           m.ObserveFsync,
		OnSnapshot:        m.ObserveSnapshot,
	})
	if err != nil {
		return err // it names the directory, file and offset
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("closing registry", "err", err)
		}
	}()

	app, err := newApp(ctx, cfg, store, m, logger)
	if err != nil {
		return err
	}
	if err := ensureAdmin(ctx, cfg, store, logger); err != nil {
		return err
	}
	return app.run(ctx, lns)
}

// repairFlag adds serve's --repair flag. It has no environment variable or
// YAML key: repairing is decided for one start, not kept in a deployment.
func repairFlag(fs *flag.FlagSet, repair *bool) {
	fs.BoolVar(repair, "repair", false, "set damaged log data and snapshots aside (under "+
		"DATA_DIR/damaged/) and start with what verifies, logging what was dropped, "+
		"instead of refusing")
}

// ensureAdmin creates the user admin on the first start, showing its
// generated password once, and says when MCP_AUTHZ_ADMIN_PASSWORD is not
// used because users exist already.
func ensureAdmin(ctx context.Context, cfg config, store *registry.Store,
	logger *slog.Logger) error {
	existed := len(store.Users()) > 0
	password, err := oauth.EnsureAdmin(ctx, store, cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	reset := "mcp-authz users set-password " + oauth.AdminUser
	switch {
	case password != "":
		// Printed once, on the start that creates the user; only its bcrypt
		// hash is stored.
		logger.Warn("created user admin with a generated password; it is shown only "+
			"this once (with the server stopped, "+reset+" sets another)",
			"user", oauth.AdminUser, "password", password)
	case existed && cfg.AdminPassword != "":
		logger.Warn(envPrefix+"ADMIN_PASSWORD is ignored: it sets the password only "+
			"when the first start creates the user admin, and users exist already; to "+
			"change a password, stop the server and run "+reset,
			"data_dir", cfg.DataDir)
	case !existed:
		logger.Info("created user admin with the password from "+envPrefix+
			"ADMIN_PASSWORD", "user", oauth.AdminUser)
	}
	return nil
}

// app is the wired service: listeners and the handlers behind them.
type app struct {
	cfg     config
	logger  *slog.Logger
	httpSrv *http.Server
	grpcSrv *grpc.Server
	health  *grpchealth.Server
	admin   *http.Server
	metrics *http.Server
	// adminToken authenticates the CLI on the admin listener.
	adminToken string
	ready      chan struct{}
}

// newApp wires the decision, the authorization server and the servers of
// every listener on an open registry.
func newApp(ctx context.Context, cfg config, store *registry.Store, m *metrics.Metrics,
	logger *slog.Logger) (*app, error) {
	ac := cfg.authzConfig()
	keys, err := authz.NewKeys(ctx, store, logger)
	if err != nil {
		return nil, fmt.Errorf("loading signing keys: %w", err)
	}
	tokens := authz.NewTokens(ac, keys)
	decider := authz.NewDecider(ac, tokens, store, logger)
	as, err := newAuthServer(cfg, store, keys, tokens, m, logger)
	if err != nil {
		return nil, err
	}
	// Pre-registered, metadata-document and development-mode clients are
	// known to the decision through the authorization server.
	decider.SetClientLookup(as)

	observe := envoy.Options{Observe: m.ObserveDecision}
	a := &app{cfg: cfg, logger: logger, ready: make(chan struct{})}
	mux := http.NewServeMux()
	// The HTTP form of the decision, one path per proxy family: /ext_authz/…
	// (Envoy http_service), /check/nginx, /check/forward (Caddy, Traefik).
	envoy.MountHTTPChecks(mux, decider, logger, observe)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("/", as)
	a.httpSrv = newHTTPServer(mux)

	a.grpcSrv = grpc.NewServer()
	a.health = envoy.Register(a.grpcSrv, decider, logger, observe)

	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", m.Handler())
	a.metrics = newHTTPServer(metricsMux)

	a.adminToken = admin.NewToken()
	a.admin = newHTTPServer(admin.NewHandler(store, a.adminToken, logger))
	return a, nil
}

// newAuthServer creates the OAuth authorization server with its metrics
// hooks.
func newAuthServer(cfg config, store *registry.Store, keys *authz.Keys,
	tokens *authz.Tokens, m *metrics.Metrics, logger *slog.Logger) (*oauth.Server, error) {
	oc, err := cfg.oauthConfig()
	if err != nil {
		return nil, err
	}
	oc.OnRegistration = m.Registered
	oc.OnTokenIssued = m.TokenIssued
	oc.OnRateLimited = m.RateLimited
	oc.OnDevModeUse = m.DevModeUsed
	as, err := oauth.NewServer(oc, store, keys, tokens, logger)
	if err != nil {
		return nil, fmt.Errorf("creating the authorization server: %w", err)
	}
	return as, nil
}

// newHTTPServer bounds how long a client may take to send a request and
// keep an idle connection, so slow or stalled clients cannot hold requests
// (and the registry state they read) open indefinitely.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// readyz answers 200 once the registry is rehydrated and every listener is
// up, 503 before.
func (a *app) readyz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-a.ready:
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

// run serves on the bound listeners until ctx is done, then shuts down
// gracefully.
func (a *app) run(ctx context.Context, lns map[string]net.Listener) error {
	err := admin.WriteEndpoint(a.cfg.DataDir, admin.Endpoint{
		URL: "http://" + lns["admin"].Addr().String(), Token: a.adminToken,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := admin.RemoveEndpoint(a.cfg.DataDir); err != nil {
			a.logger.Warn("removing admin endpoint file", "err", err)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreClosed(a.httpSrv.Serve(lns["http"])) })
	g.Go(func() error { return a.grpcSrv.Serve(lns["grpc"]) })
	g.Go(func() error { return ignoreClosed(a.admin.Serve(lns["admin"])) })
	g.Go(func() error { return ignoreClosed(a.metrics.Serve(lns["metrics"])) })
	close(a.ready)
	a.logger.Info("mcp-authz ready", "http", lns["http"].Addr().String(),
		"grpc", lns["grpc"].Addr().String(), "admin", lns["admin"].Addr().String(),
		"metrics", lns["metrics"].Addr().String())

	g.Go(func() error {
		<-gctx.Done()
		a.logger.Info("mcp-authz shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		// Tell Envoy's health checks first, then drain.
		a.health.Shutdown()
		a.grpcSrv.GracefulStop()
		return errors.Join(a.httpSrv.Shutdown(sctx), a.admin.Shutdown(sctx),
			a.metrics.Shutdown(sctx))
	})
	return g.Wait()
}

// listenAll opens every listener, by name, or none.
func listenAll(ls []listener) (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("listening on %s address %q: %w", l.name, l.addr, err)
		}
		lns[l.name] = ln
	}
	return lns, nil
}

func closeAll(lns map[string]net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newLogger builds the process logger from the configuration.
func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
	level, err := cfg.level()
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// durationText writes durations as text like 10m0s in every log line,
// rather than as nanoseconds in JSON.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
