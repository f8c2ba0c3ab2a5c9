// Command veil is the one binary of Veil: the platform, the agents, and the
// client commands of operators, banks, enterprises and auditors.
package main
