// Package hubtest starts real Veil deployments inside tests (package
// hub/local): a CA, a platform and agents, each a gRPC server with mutual
// TLS on 127.0.0.1, with the platform's state in a SQLite file in the test's
// temporary directory. Nothing is mocked.
package hubtest
