// Build-time replacement of FerretDB 1.24.2's internal/backends/sqlite/metadata/pool/opendb.go
// (install.py patched_modules: a copy of the module with this file in place, and a replace
// directive through -modfile): the same openDB, with no cap on open SQLite connections.
//
// Why: upstream caps each database's database/sql pool at 100 connections, and several of
// its handlers take a second connection while still holding a first one. An update keeps the
// rows of its query open (one connection) while it writes the matched document (a second);
// a find that leaves a cursor holds its connection until the client drains it. Once about
// 100 such operations are in flight, each waits for a connection none of them gives back,
// with no deadline: the store stops answering, even ping, until restarted. The local cluster
// hit that with two replicas of every process (docs/decisions.md, "FerretDB's pool
// deadlock"). Without the cap there is nothing to wait for: SQLite itself lets any number of
// WAL readers run beside its one writer, and writers queue on busy_timeout, not on the pool.
// Connections stay bounded by the clients' own pools (PyMongo: 100 per client).
//
// PARLEY_FERRETDB_SQLITE_MAX_OPEN_CONNS restores a cap (upstream's is 100), to reproduce
// the deadlock: deploy/tests/test_ferretdb_pool.py.
//
// The directory starts with "_" so that Go tooling (./...) never builds it as a package of
// the wrapper module; it compiles only as part of FerretDB's pool package.
package pool

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"strconv"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver, as upstream does

	"github.com/FerretDB/FerretDB/internal/util/fsql"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/internal/util/logging"
	"github.com/FerretDB/FerretDB/internal/util/state"
)

// maxOpenConns is 0 (no cap) unless PARLEY_FERRETDB_SQLITE_MAX_OPEN_CONNS says otherwise.
func maxOpenConns() int {
	n, err := strconv.Atoi(os.Getenv("PARLEY_FERRETDB_SQLITE_MAX_OPEN_CONNS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func openDB(name, uri string, memory bool, l *slog.Logger, sp *state.Provider) (*fsql.DB, error) {
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	// connections live for the process (opening one re-reads the schema); up to 100 idle
	// ones are kept, as upstream does, and any number may be open
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	db.SetMaxIdleConns(100)
	db.SetMaxOpenConns(maxOpenConns())

	if memory {
		// every connection to ":memory:" is a database of its own: one connection only
		db.SetMaxIdleConns(1)
		db.SetMaxOpenConns(1)
	}

	if err = db.Ping(); err != nil {
		_ = db.Close()
		return nil, lazyerrors.Error(err)
	}

	// the backend's name and version, reported by buildInfo and serverStatus; set once
	if sp.Get().BackendVersion == "" {
		err = sp.Update(func(s *state.State) {
			s.BackendName = "SQLite"
			row := db.QueryRowContext(context.Background(), "SELECT sqlite_version()")
			if scanErr := row.Scan(&s.BackendVersion); scanErr != nil {
				l.Error("cannot read the SQLite version", logging.Error(scanErr))
			}
		})
		if err != nil {
			l.Error("cannot record the SQLite version", logging.Error(err))
		}
	}

	return fsql.WrapDB(db, name, l), nil
}
