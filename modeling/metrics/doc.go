// Package metrics evaluates binary credit models: ROC AUC (tie-aware,
// Mann-Whitney), the Kolmogorov-Smirnov statistic, ROC points downsampled for
// storage and charts, and the score histogram of good versus bad.
//
// Conventions: label 1 is "bad" (default, the positive class), label 0 is
// "good"; a higher score means more likely bad (for example the probability
// of default). A row is predicted bad at threshold t when score >= t.
//
// It runs where the scores and labels meet in the clear: at the label holder
// during training evaluation. What it returns (AUC, KS, downsampled ROC
// points, histogram counts) is aggregate and is what a model registry keeps;
// it never returns per-row values.
package metrics
