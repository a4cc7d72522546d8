// Command ferretdb runs FerretDB 1.24 (MongoDB wire protocol) for Parley's local cluster.
//
// Why a wrapper: `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a
// binary that panics at start, because build/version/version.txt is gitignored upstream and so
// missing from module downloads. The embeddable package github.com/FerretDB/FerretDB/ferretdb
// starts the same server without that check.
//
// The wrapper also works around a performance bug of the SQLite backend (see idindex.go and
// docs/decisions.md): every lookup by _id is a full table scan unless an extra index exists.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func env(name, fallback string) string {
	if value, ok := os.LookupEnv(name); ok && value != "" {
		return value
	}
	return fallback
}

func envBool(name string, fallback bool) bool {
	if value, err := strconv.ParseBool(env(name, strconv.FormatBool(fallback))); err == nil {
		return value
	}
	fmt.Fprintf(os.Stderr, "bad %s: want true or false\n", name)
	os.Exit(2)
	return false
}

func main() {
	listen := flag.String("listen-addr", env("FERRETDB_LISTEN_ADDR", "127.0.0.1:27017"), "TCP address to listen on")
	dir := flag.String("sqlite-dir", env("FERRETDB_SQLITE_DIR", ".local/ferretdb/"), "directory of the SQLite backend")
	level := flag.String("log-level", env("FERRETDB_LOG_LEVEL", "warn"), "debug, info, warn or error")
	handler := flag.String("handler", env("FERRETDB_HANDLER", "sqlite"), "backend: sqlite or postgresql")
	pgURL := flag.String("postgresql-url", env("FERRETDB_POSTGRESQL_URL", ""), "PostgreSQL URL for -handler=postgresql")
	idIndex := flag.Bool("id-index", envBool("FERRETDB_ID_INDEX", true),
		"add to every collection table an index on the _id expression FerretDB's lookups use (idindex.go)")
	// NORMAL in WAL mode: a commit is durable once FerretDB acknowledges it as far as a process
	// crash (SIGKILL) is concerned; only an OS crash or power loss may lose the last commits
	// (never corrupts). FULL (SQLite's default) fsyncs the WAL on every commit.
	synchronous := flag.String("sqlite-synchronous", env("FERRETDB_SQLITE_SYNCHRONOUS", "normal"),
		"SQLite synchronous pragma: off, normal, full or extra")
	flag.Parse()

	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "bad -log-level:", err)
		os.Exit(2)
	}
	switch *synchronous {
	case "off", "normal", "full", "extra":
	default:
		fmt.Fprintln(os.Stderr, "bad -sqlite-synchronous:", *synchronous)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

	// FerretDB's SQLite URL is a directory and must end with a slash; FerretDB adds its own
	// defaults (busy_timeout(10000), journal_mode(wal), auto_vacuum(none)) after ours.
	directory := strings.TrimSuffix(*dir, "/") + "/"
	if err := os.MkdirAll(directory, 0o755); err != nil {
		logger.Error("cannot create sqlite directory", "error", err)
		os.Exit(1)
	}

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     "file:" + directory + "?_pragma=synchronous(" + *synchronous + ")",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		logger.Error("cannot configure FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var background sync.WaitGroup
	if *idIndex && *handler == "sqlite" {
		background.Add(1)
		go func() {
			defer background.Done()
			maintainIDIndexes(ctx, logger, directory)
		}()
	}
	logger.Warn("FerretDB listening", "addr", *listen, "handler", *handler,
		"id_index", *idIndex, "synchronous", *synchronous)
	err = server.Run(ctx)
	failed := err != nil && ctx.Err() == nil
	stop() // also ends maintainIDIndexes when FerretDB stopped by itself
	background.Wait()
	if failed {
		logger.Error("FerretDB stopped", "error", err)
		os.Exit(1)
	}
}
