// Package store is the platform's database layer.
//
// The platform keeps its state (the party registry, the enterprise key
// directory, grants, models and the audit log) in one SQL database. SQLite
// (modernc.org/sqlite, pure Go, no cgo) is the default and lives in a single
// file in the platform's data directory; PostgreSQL (pgx) is used when several
// platform replicas share state or the operator prefers a managed server.
//
// Both backends are reached through database/sql with the same portable SQL;
// DB.Rebind rewrites '?' placeholders for PostgreSQL. Each component owns a
// list of migration steps, applied in order on start and recorded in the
// schema_migrations table, so a restart or an upgrade applies only what is new.
//
// The registry itself is behind the small Registry interface; SQLRegistry
// implements it on either backend.
//
// Security: the database holds no raw data of any provider and no key that can
// decrypt anything. It does hold the audit log, whose integrity is protected
// by the Merkle tree and signed checkpoints in package authz/audit, not by the
// database.
package store
