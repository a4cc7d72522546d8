package main

// Why: FerretDB 1.24's SQLite backend stores each collection as a table with one JSON column
// _ferretdb_sjson and looks documents up by _id with `WHERE _ferretdb_sjson->'$._id' = ?`
// (find, update, delete by _id), but its unique _id index is on `_ferretdb_sjson->"_id"`.
// SQLite uses an index on an expression only for an identical expression, so every such
// lookup is a full table scan (EXPLAIN QUERY PLAN: SCAN) and gets linearly slower with the
// collection size. This file adds, beside FerretDB's own, an index on the exact expression of
// those queries: `<table>__ferretdb_id_expr ON <table> (_ferretdb_sjson->'$._id')`.
//
// Why it is safe with FerretDB unmodified:
//   - FerretDB knows its indexes from its metadata table (_ferretdb_collections), not from the
//     SQLite schema: it ignores an index it did not create (listIndexes does not show it,
//     dropIndexes cannot touch it). Only dbStats' total size counts it.
//   - dropping a collection drops its table, and SQLite drops the table's indexes with it;
//     renaming a collection keeps its table name, and so the index; dropping a database
//     deletes the file.
//   - SQLite re-prepares FerretDB's cached statements after a schema change, and WAL readers
//     keep their snapshot; a CREATE INDEX only waits for (and briefly holds) the write lock.
//   - only CREATE INDEX IF NOT EXISTS is ever run: no checkpoint, no pragma that needs an
//     exclusive lock (a RESTART/TRUNCATE checkpoint from here deadlocks with FerretDB's open
//     cursors and makes its writes fail with SQLITE_BUSY).
//   - a database being created (no metadata table yet) or dropped (file gone) is skipped and
//     looked at again on the next tick; the file is opened with mode=rw, so a database dropped
//     in the meantime is never re-created as an empty file. Errors are logged, never fatal.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the same driver (and version) FerretDB registers and uses
)

// idIndexSuffix names our index; FerretDB's own indexes are named <table>_<index name>.
const idIndexSuffix = "__ferretdb_id_expr"

// idIndexInterval is how soon a new collection gets its index.
const idIndexInterval = time.Second

// maintainIDIndexes adds the _id expression index to every collection table of every database
// in dir, now and then once per idIndexInterval, until ctx is done.
func maintainIDIndexes(ctx context.Context, logger *slog.Logger, dir string) {
	failing := map[string]string{} // file -> last error logged, to log each failure once
	ticker := time.NewTicker(idIndexInterval)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite")) // only ErrBadPattern
		for _, file := range files {
			err := ensureIDIndexes(ctx, logger, file)
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil && failing[file] != err.Error():
				logger.Error("cannot add the _id expression index; retrying every tick",
					"file", file, "error", err)
				failing[file] = err.Error()
			case err == nil && failing[file] != "":
				logger.Warn("_id expression index retry succeeded", "file", file)
				delete(failing, file)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// ensureIDIndexes creates the missing _id expression indexes of one database file.
func ensureIDIndexes(ctx context.Context, logger *slog.Logger, file string) error {
	info, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
		return nil // dropped, or being created
	}
	if err != nil {
		return err
	}
	// Open per tick and close at once (milliseconds): if FerretDB drops the database while
	// this connection is open, SQLite leaves the deleted file's -wal/-shm behind. That is
	// only clutter: FerretDB opens *.sqlite files only, and SQLite deletes a WAL it finds
	// beside a new, empty database of the same name instead of replaying it.
	// busy_timeout as FerretDB's own connections.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	// Tables listed in FerretDB's metadata that exist and lack our index. No metadata table
	// yet means FerretDB is still creating the database.
	rows, err := db.QueryContext(ctx, `
		SELECT c.table_name
		FROM _ferretdb_collections AS c
		JOIN sqlite_master AS t ON t.type = 'table' AND t.name = c.table_name
		WHERE NOT EXISTS (
			SELECT 1 FROM sqlite_master AS i
			WHERE i.type = 'index' AND i.name = c.table_name || ?)`, idIndexSuffix)
	if err != nil {
		var exists int
		if db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master
			WHERE type = 'table' AND name = '_ferretdb_collections'`).Scan(&exists) == nil && exists == 0 {
			return nil
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	for _, table := range tables {
		started := time.Now()
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`,
			table+idIndexSuffix, table)
		if _, err := db.ExecContext(ctx, q); err != nil {
			var exists int
			if db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master
				WHERE type = 'table' AND name = ?`, table).Scan(&exists) == nil && exists == 0 {
				continue // the collection was dropped since the query
			}
			return fmt.Errorf("table %s: %w", table, err)
		}
		logger.Info("added the _id expression index", "file", file, "table", table,
			"took", time.Since(started))
	}
	return nil
}
