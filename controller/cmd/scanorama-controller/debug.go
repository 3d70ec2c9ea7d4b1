package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
)

// serveDebug serves Go's profiling endpoints (/debug/pprof/) on addr until
// ctx ends. They reveal internals and cost CPU while profiling: bind them to
// loopback. The mutex and block profiles sample only while they serve:
// their cost is paid by a controller being profiled, not by every one.
func serveDebug(ctx context.Context, addr string, log hclog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// One contention event in 100, blocking events of 100 µs or more.
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("debug endpoints serving", "listen", lis.Addr().String(), "path", "/debug/pprof/")
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug endpoints stopped", "error", err)
		}
	}()
	return nil
}
