// Package storetest gives tests a real PostgreSQL database of their own.
//
// .ci/run installs and starts PostgreSQL and sets VEIL_TEST_POSTGRES; outside
// CI the local default server is tried, and the test is skipped with a
// message only when none answers. Each call creates a fresh schema and
// returns a DSN whose search_path points at it, so tests in different
// packages, which run in parallel, never see each other's tables.
package storetest
