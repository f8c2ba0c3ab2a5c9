// Package veilv1 is version 1 of Veil's wire protocol: the protobuf
// messages and gRPC services in the .proto files of this directory, and the
// Go code generated from them (regenerate with proto/gen.sh; do not edit the
// .pb.go files).
//
// Services, by who serves and who calls:
//
//   - Registry, PSI, Training, Scoring, Authz: served by the platform;
//     called by the operator (role platform), banks, auditors, and, for a
//     few Authz methods, enterprises without a certificate who sign their
//     requests with their Ed25519 key.
//   - Agent, AgentPSI, AgentTrain, AgentScoring, AgentAuthz: served by every
//     agent; called only by the platform.
//
// Every call runs over mutual TLS; the role in the caller's certificate
// decides what it may call (see package hub).
package veilv1
