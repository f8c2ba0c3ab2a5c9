// Package exampledata bundles the real example datasets (see README.md in
// this directory for provenance and licences) into the veil binary, so that
// `veil demo` and `veil local ...` examples run anywhere without a download.
package exampledata
