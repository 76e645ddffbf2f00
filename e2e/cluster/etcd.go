package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func parseURLs(list string) ([]url.URL, error) {
	var out []url.URL
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", s, err)
		}
		out = append(out, *u)
	}
	return out, nil
}

// runEtcd starts a single-member etcd with embed and blocks until SIGINT or
// SIGTERM (or until etcd fails).
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	name := fs.String("name", "default", "member name")
	dataDir := fs.String("data-dir", "etcd-data", "data directory")
	clientURLs := fs.String("listen-client-urls", "http://127.0.0.1:2379", "comma-separated client listen URLs")
	advClientURLs := fs.String("advertise-client-urls", "", "comma-separated advertised client URLs (default: listen-client-urls)")
	peerURLs := fs.String("listen-peer-urls", "http://127.0.0.1:2380", "comma-separated peer listen URLs")
	logLevel := fs.String("log-level", "warn", "debug, info, warn, error")
	noFsync := fs.Bool("unsafe-no-fsync", false, "disable fsync (faster; data may be lost on crash)")
	quota := fs.Int64("quota-backend-bytes", 0, "backend quota in bytes (0 = etcd default)")
	startTimeout := fs.Duration("start-timeout", 60*time.Second, "how long to wait for the server to become ready")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.LogLevel = *logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = *noFsync
	cfg.QuotaBackendBytes = *quota
	// NewConfig leaves this at 0 (only the etcd CLI flag has a default), which
	// makes etcd log every single request as "expensive" at warn level.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	var err error
	if cfg.ListenClientUrls, err = parseURLs(*clientURLs); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	if *advClientURLs == "" {
		cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	} else if cfg.AdvertiseClientUrls, err = parseURLs(*advClientURLs); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	if cfg.ListenPeerUrls, err = parseURLs(*peerURLs); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd: start:", err)
		return 1
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd: ready, serving clients on %s\n", *clientURLs)
	case <-time.After(*startTimeout):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: timed out waiting for readiness")
		return 1
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "etcd: received %s, shutting down\n", s)
		return 0
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd: server error:", err)
		return 1
	}
}
