// Package report renders a model report: a self-contained HTML page with the
// model's metadata (parties and their feature names, hyperparameters, AUC,
// KS, training time) and three charts drawn with gonum/plot and embedded as
// PNG data: URIs: the ROC curve, the KS chart and the score distribution of
// good versus bad.
//
// It draws only aggregates that a model registry keeps (metrics.Evaluation:
// downsampled ROC points and histogram counts), never per-enterprise scores,
// labels or weights, so the page can be shared with anyone allowed to see the
// model's metadata.
package report
