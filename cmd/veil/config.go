package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

func isUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "flag needs an argument") ||
		strings.HasPrefix(msg, "invalid argument") || strings.Contains(msg, "required flag") ||
		strings.Contains(msg, "accepts ") || strings.Contains(msg, "arg(s)")
}

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// envName is the environment variable that backs a flag.
func envName(flag string) string {
	return "VEIL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyConfig fills every flag the user did not set from VEIL_* environment
// variables, then from the config file. Flags win over the environment,
// which wins over the file.
func applyConfig(cmd *cobra.Command) error {
	fileValues := map[string]string{}
	path, _ := cmd.Flags().GetString("config")
	if !cmd.Flags().Changed("config") {
		if v := os.Getenv("VEIL_CONFIG"); v != "" {
			path = v
		}
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return usagef("config file: %w", err)
		}
		fileValues, err = parseConfig(f)
		f.Close()
		if err != nil {
			return usagef("config file %s: %w", path, err)
		}
	}
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil || f.Name == "config" || f.Name == "help" {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		src := "environment variable " + envName(f.Name)
		if !ok {
			v, ok = fileValues[f.Name]
			src = "config file key " + f.Name
		}
		if !ok {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			if err := sv.Replace(splitList(v)); err != nil {
				firstErr = usagef("%s: %w", src, err)
			}
			return
		}
		if err := f.Value.Set(v); err != nil {
			firstErr = usagef("%s: %w", src, err)
		}
	})
	return firstErr
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseConfig reads 'key = value' or 'key: value' lines; '#' starts a comment.
func parseConfig(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		i := strings.IndexAny(s, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("line %d: want 'flag-name = value'", line)
		}
		k := strings.TrimSpace(s[:i])
		v := strings.TrimSpace(s[i+1:])
		v = strings.Trim(v, `"'`)
		out[k] = v
	}
	return out, sc.Err()
}

// newLogger builds the structured logger selected by --log-format/--log-level.
func newLogger(cmd *cobra.Command, w io.Writer) (*slog.Logger, error) {
	format, _ := cmd.Flags().GetString("log-format")
	levelName, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", levelName)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
