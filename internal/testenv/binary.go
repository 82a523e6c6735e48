package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sbinDirs are searched after PATH: a non-root PATH often lacks /usr/sbin,
// where Debian puts mariadbd and nutcracker.
var sbinDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}

// findBinary returns the path of the first of names found in PATH or
// sbinDirs. The error says how to install the servers.
func findBinary(names ...string) (string, error) {
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
		for _, dir := range sbinDirs {
			path := filepath.Join(dir, name)
			if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("testenv: %s not found in PATH or %s; "+
		"run the tests with `make test`, or install the servers once with "+
		"`bash scripts/services.sh start` (Debian packages memcached, mariadb-server, "+
		"mariadb-client, nutcracker)", strings.Join(names, " or "), strings.Join(sbinDirs, ", "))
}
