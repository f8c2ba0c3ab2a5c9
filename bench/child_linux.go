package bench

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel send SIGTERM to a child party if the
// benchmark process dies first, so no orphaned server keeps running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
