// Package dataset loads one party's table (a CSV file, a SQLite file and
// query, or a PostgreSQL DSN and query) and preprocesses it locally for
// vertical federated modelling.
//
// # Where it runs and what leaves
//
// It runs inside a party's agent, on the party's own data. Nothing here is a
// protocol message: the table's values, IDs and fitted Transform (medians,
// means, categories) stay with the party. Only Table.Summary (row count,
// feature names, warning count) is meant to leave the agent. Errors and
// warnings name lines, rows and columns but never quote a cell value or an
// ID, so they can be logged or returned to the platform without breaking
// invariant 1 of DESIGN.md.
//
// # Sources
//
// All sources become the same text table (header + records) and go through
// the same preprocessing: LoadCSV / ReadCSV, LoadSQL(ctx, "sqlite"|"pgx",
// dsn, query) and Load(ctx, Source{Data, Query}) which picks the source the
// way the agent's --data/--query flags do. SQL NULL is a missing value. CSV
// line numbers in messages are the line where a record starts; SQL sources
// give the 1-based result row.
//
// # Preprocessing (fitted on the party's rows)
//
//   - IDs are trimmed and upper-cased (NormalizeID). With IDFormat "uscc" an ID
//     must be a GB 32100-2015 Unified Social Credit Code with a correct check
//     character (ValidUSCC).
//   - A feature column is numeric when at least 90% of its non-missing cells
//     parse as numbers (|x| <= MaxAbsValue); otherwise, or when listed in
//     Options.Categorical, it is text and one-hot encoded into columns named
//     col=value, ordered by decreasing frequency. At most MaxCategories
//     (default 32) columns per text column: the rarer values share col=<other>.
//     All categories are kept (no reference level dropped): the models use L2.
//   - Missing cells (”, NA, N/A, ?, null, NaN in any case) are imputed with
//     the median of the column's parsed values (text: no category, all
//     zeros). With MissingIndicators a <col>_missing 0/1 feature is added for
//     each column that had a missing value.
//   - With Options.Clip q > 0 numeric columns are winsorised to their q and
//     1-q quantiles (after imputation), for heavy-tailed ratios.
//   - Every feature (one-hot and indicator columns included) is standardised
//     to mean 0 and population sd 1 unless NoStandardize. A constant column
//     (sd 0) is kept and is always 0, even at scoring time.
//   - The fitted Transform is JSON; Transform.Apply, LoadCSVWithTransform and
//     friends give a later row exactly the same preprocessing (a category not
//     seen when fitting becomes <other> if the column has it, else no category).
//
// # Edge cases (each has a test)
//
//   - Header only: error "no rows". Empty input: error "no header row".
//   - A row with more or fewer fields than the header: always an error naming
//     its line, even with SkipBadRows (it means a broken file, not a bad row).
//   - Row-level problems are an error naming the line by default; with
//     Options.SkipBadRows the row is dropped and a counted warning lists the
//     first ten lines of each reason. They are: an empty ID; an invalid USCC;
//     a duplicate ID (the first occurrence is kept, the later ones are the bad
//     rows; the error names both lines); an unparsable number in a numeric
//     column; a missing label or a label other than 0 or 1.
//   - An all-missing column is kept as a constant 0 feature, with a warning.
//   - Repeated or empty header names, an ID, label, Drop or Categorical column
//     that is not in the header, and two features that would get the same
//     name are errors.
//
// The loader holds the raw text of the whole table in memory while
// preprocessing (about two to three times the CSV size).
package dataset
