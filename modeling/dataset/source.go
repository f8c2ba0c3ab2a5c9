package dataset

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	// Database drivers for LoadSQL: "pgx" (PostgreSQL) and "sqlite" (pure Go).
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// rawTable is a source read as text, before any preprocessing. CSV and SQL
// sources both become a rawTable, so they share every preprocessing rule.
type rawTable struct {
	header  []string
	records [][]string
	locs    []int  // line number (CSV) or 1-based row number (SQL) of each record
	locKind string // "line" or "row"
}

func (r *rawTable) where(i int) string { return fmt.Sprintf("%s %d", r.locKind, r.locs[i]) }

// readCSV reads a CSV stream: a header row, then data rows. Quoted fields may
// span lines; line numbers refer to the line where a record starts. A UTF-8
// byte-order mark before the header is ignored. Every row must have as many
// fields as the header.
func readCSV(r io.Reader) (*rawTable, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked here, to name the line in our own words
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("dataset: empty input: no header row")
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: reading header: %w", err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	raw := &rawTable{header: header, locKind: "line"}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError already names the line and column.
			return nil, fmt.Errorf("dataset: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("dataset: line %d: %d fields, but the header has %d", line, len(rec), len(header))
		}
		raw.records = append(raw.records, rec)
		raw.locs = append(raw.locs, line)
	}
	return raw, nil
}

func readCSVFile(path string) (*rawTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: open CSV: %w", err)
	}
	defer f.Close()
	raw, err := readCSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, nil
}

// sqlDriver maps the accepted driver names to registered database/sql drivers.
func sqlDriver(name string) (string, error) {
	switch strings.ToLower(name) {
	case "sqlite", "sqlite3":
		return "sqlite", nil
	case "pgx", "postgres", "postgresql":
		return "pgx", nil
	}
	return "", fmt.Errorf("dataset: unknown SQL driver %q (use sqlite or pgx)", name)
}

// readSQL runs query and reads its result set as text. NULL is a missing
// value; numbers are formatted exactly (shortest round-trip form); booleans
// become 1/0; times become RFC 3339.
func readSQL(ctx context.Context, driver, dsn, query string) (*rawTable, error) {
	drv, err := sqlDriver(driver)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(query) == "" {
		return nil, errors.New("dataset: an SQL source needs a query")
	}
	if drv == "sqlite" {
		// Opening a missing file would silently create an empty database.
		if _, err := os.Stat(dsn); err != nil {
			return nil, fmt.Errorf("dataset: SQLite file: %w", err)
		}
		dsn = "file:" + dsn + "?mode=ro"
	}
	db, err := sql.Open(drv, dsn)
	if err != nil {
		return nil, fmt.Errorf("dataset: open %s database: %w", drv, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s query: %w", drv, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("dataset: %s query columns: %w", drv, err)
	}
	raw := &rawTable{header: cols, locKind: "row"}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for n := 1; rows.Next(); n++ {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("dataset: %s query row %d: %w", drv, n, err)
		}
		rec := make([]string, len(cols))
		for i, v := range vals {
			s, err := sqlText(v)
			if err != nil {
				return nil, fmt.Errorf("dataset: %s query row %d column %s: %w", drv, n, cols[i], err)
			}
			rec[i] = s
		}
		raw.records = append(raw.records, rec)
		raw.locs = append(raw.locs, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dataset: %s query: %w", drv, err)
	}
	return raw, nil
}

func sqlText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int16:
		return strconv.FormatInt(int64(x), 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case fmt.Stringer: // e.g. pgtype.Numeric
		return x.String(), nil
	}
	return "", fmt.Errorf("unsupported SQL value type %T", v)
}
