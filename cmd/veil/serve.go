package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"veil/hub"
	"veil/hub/pki"
	"veil/modeling/dataset"
)

func newPlatformCmd() *cobra.Command {
	c := &cobra.Command{Use: "platform", Short: "Run the platform (the hub that coordinates every job)"}
	var listen, dataDir, db, tlsDir, metricsListen string
	var cpEvery uint64
	var cpInterval time.Duration
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the platform's gRPC API over mTLS",
		Long: `Runs the platform: the party registry, PSI, training and scoring
coordination, grants and the audit log. State lives in an embedded SQLite file
(<data-dir>/platform.db) unless --db names a PostgreSQL server. SIGINT or
SIGTERM stops it gracefully.`,
		Example: `  veil platform serve --listen :7443 --data-dir platform-data/ --tls-dir platform/
  veil platform serve --listen :7443 --tls-dir platform/ --db postgres://veil:secret@db:5432/veil
  VEIL_DATA_DIR=/var/lib/veil veil platform serve --tls-dir /etc/veil/platform --metrics-listen :9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if tlsDir == "" {
				return usagef("--tls-dir is required (a directory from 'veil pki issue --role platform')")
			}
			id, err := pki.Load(tlsDir)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			p, err := hub.NewPlatform(ctx, hub.PlatformConfig{Identity: id, DataDir: dataDir, DB: db, Log: log, CheckpointEvery: cpEvery, CheckpointInterval: cpInterval})
			if err != nil {
				return err
			}
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			if metricsListen != "" {
				addr, err := hub.ServeMetrics(ctx, metricsListen, p.Metrics, log)
				if err != nil {
					return err
				}
				log.Info("metrics serving", "address", addr.String())
			}
			return p.Serve(ctx, lis)
		},
	}
	serve.Flags().StringVar(&listen, "listen", ":7443", "gRPC listen address")
	serve.Flags().StringVar(&dataDir, "data-dir", "platform-data", "directory for the embedded SQLite database")
	serve.Flags().StringVar(&db, "db", "", "database: postgres://... (default: SQLite in --data-dir)")
	serve.Flags().StringVar(&tlsDir, "tls-dir", "", "the platform's certificate directory (party.crt, party.key, ca.crt)")
	serve.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address (e.g. :9090)")
	serve.Flags().Uint64Var(&cpEvery, "checkpoint-every", 1000, "sign an audit checkpoint at least every N entries")
	serve.Flags().DurationVar(&cpInterval, "checkpoint-interval", 10*time.Second, "sign an audit checkpoint at least this often while entries are added")
	c.AddCommand(serve)
	return c
}

// agentFlags are the flags that say where an agent's table comes from.
type agentFlags struct {
	data, query, idColumn, idFormat, label string
	drop, categorical                      []string
	missingIndicators, skipBadRows         bool
	clip                                   float64
}

func (f *agentFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.data, "data", "", "the table: a CSV file, a SQLite file (with --query) or a postgres:// DSN (with --query)")
	cmd.Flags().StringVar(&f.query, "query", "", "SQL query selecting the table from a SQLite or PostgreSQL source")
	cmd.Flags().StringVar(&f.idColumn, "id-column", "uscc", "column holding the enterprise ID")
	cmd.Flags().StringVar(&f.idFormat, "id-format", "", "ID format to enforce: '' (any) or 'uscc' (GB 32100-2015 check character)")
	cmd.Flags().StringVar(&f.label, "label", "", "0/1 label column (only the label holder sets it)")
	cmd.Flags().StringSliceVar(&f.drop, "drop", nil, "columns to ignore (repeatable)")
	cmd.Flags().StringSliceVar(&f.categorical, "categorical", nil, "numeric-looking columns to one-hot encode (repeatable)")
	cmd.Flags().BoolVar(&f.missingIndicators, "missing-indicators", false, "add a <col>_missing 0/1 column for columns with missing values")
	cmd.Flags().Float64Var(&f.clip, "clip", 0, "winsorise numeric columns at this quantile and 1 minus it (e.g. 0.01 for heavy-tailed ratios)")
	cmd.Flags().BoolVar(&f.skipBadRows, "skip-bad-rows", false, "drop rows with a bad ID, duplicate ID or bad value (counted warnings) instead of failing")
}

func (f *agentFlags) load(ctx context.Context) (*dataset.Table, error) {
	if f.data == "" {
		return nil, usagef("--data is required")
	}
	return dataset.Load(ctx, dataset.Source{Data: f.data, Query: f.query}, dataset.Options{
		IDColumn: f.idColumn, IDFormat: f.idFormat, LabelColumn: f.label, Drop: f.drop,
		Categorical: f.categorical, MissingIndicators: f.missingIndicators, SkipBadRows: f.skipBadRows, Clip: f.clip,
	})
}

func newAgentCmd() *cobra.Command {
	c := &cobra.Command{Use: "agent", Short: "Run a data provider's (or label-holding bank's) agent"}
	var listen, tlsDir, dataDir, metricsListen, agentName string
	var lists []string
	var af agentFlags
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the agent beside the party's own data",
		Long: `Loads the party's table (CSV, SQLite or PostgreSQL), preprocesses it locally
(one-hot encoding of text columns, median imputation, standardisation) and
serves the platform over mTLS. Rows never leave this process: the platform
receives only summaries, blinded PSI messages and ciphertexts.`,
		Example: `  veil agent serve --listen :7501 --name tax --data tax.csv --id-column uscc --id-format uscc
  veil agent serve --listen :7501 --tls-dir tax/ --data tax.csv --id-column uscc --id-format uscc
  veil agent serve --listen :7502 --tls-dir bank/ --data bank.csv --label y
  veil agent serve --listen :7503 --tls-dir social/ --data social.db --query 'SELECT * FROM contributions'
  veil agent serve --listen :7505 --tls-dir courts/ --data courts.csv --list dishonest=dishonest.csv
  veil agent serve --listen :7504 --tls-dir courts/ --data postgres://ro@db/courts --query 'SELECT uscc, cases FROM t'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if tlsDir == "" {
				if agentName == "" {
					return usagef("--tls-dir is required (a directory from 'veil pki issue --role provider|bank')")
				}
				tlsDir = agentName // the directory 'veil pki issue --out NAME/' made
			}
			id, err := pki.Load(tlsDir)
			if err != nil {
				return err
			}
			if agentName != "" && agentName != id.Identity.Name {
				return usagef("--name %q does not match the certificate in %s, which is for %q", agentName, tlsDir, id.Identity.Name)
			}
			ctx := cmd.Context()
			table, err := af.load(ctx)
			if err != nil {
				return err
			}
			for _, w := range table.Warnings {
				log.Warn("dataset", "warning", w)
			}
			if dataDir == "" {
				dataDir = id.Identity.Name + "-data"
			}
			a, err := hub.NewAgent(hub.AgentConfig{Identity: id, Table: table, DataDir: dataDir, Log: log})
			if err != nil {
				return err
			}
			for _, l := range lists {
				name, path, ok := strings.Cut(l, "=")
				if !ok || name == "" || path == "" {
					return usagef("--list %q: want name=file.csv", l)
				}
				if err := a.AddList(ctx, fileList(name, path, af.idColumn)); err != nil {
					return err
				}
				log.Info("list offered for list checks", "list", name, "file", path)
			}
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			if metricsListen != "" {
				addr, err := hub.ServeMetrics(ctx, metricsListen, a.Metrics, log)
				if err != nil {
					return err
				}
				log.Info("metrics serving", "address", addr.String())
			}
			return a.Serve(ctx, lis)
		},
	}
	serve.Flags().StringVar(&listen, "listen", ":7501", "gRPC listen address")
	serve.Flags().StringVar(&tlsDir, "tls-dir", "", "the agent's certificate directory (party.crt, party.key, ca.crt); default: the directory named --name")
	serve.Flags().StringVar(&agentName, "name", "", "the agent's party name; must match its certificate")
	serve.Flags().StringVar(&dataDir, "data-dir", "", "local state: model parts, checkpoints, usage records (default <name>-data)")
	serve.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address")
	serve.Flags().StringArrayVar(&lists, "list", nil, "offer a named list for bank list checks: name=file.csv (IDs in --id-column or one per line); re-read when the file changes")
	af.register(serve)
	c.AddCommand(serve, newAgentUsageCmd())
	return c
}

// fileList is a list offered for list checks, read from a file and re-read
// only when the file's size or modification time changes.
func fileList(name, path, idColumn string) hub.ListSource {
	var mu sync.Mutex
	var mod time.Time
	var size int64
	var ids []string
	return hub.ListSource{Name: name, Load: func(context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if ids != nil && st.ModTime().Equal(mod) && st.Size() == size {
			return ids, nil
		}
		got, err := readIDs(path, idColumn)
		if err != nil {
			return nil, err
		}
		ids, mod, size = got, st.ModTime(), st.Size()
		return ids, nil
	}}
}
