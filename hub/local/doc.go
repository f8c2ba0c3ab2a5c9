// Package local runs a whole Veil deployment inside one process: a CA, a
// platform and agents, each a real gRPC server with mutual TLS on
// 127.0.0.1, with the platform's state in a SQLite file in a work
// directory. `veil demo`, the `veil local ...` commands and end-to-end tests
// use it, so that users can try their data before a deployment (like FATE's
// standalone mode) on exactly the code path a deployment runs.
package local
