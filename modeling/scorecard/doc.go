// Package scorecard turns a probability of default into scorecard points:
//
//	points = offset + factor * ln(odds),  odds = good:bad = (1 - p) / p
//
// the standard credit-scorecard scaling, so more points mean a safer
// enterprise. It is configured by the points at a base odds and the points
// to double the odds (PDO): factor = PDO / ln 2, offset = BasePoints -
// factor * ln(BaseOdds). The default is 600 points at odds of 50:1 (good to
// bad) and 20 more points each time the odds double: factor 28.8539,
// offset 487.1229.
//
// It runs at the bank, after the bank decrypts the score; the configuration
// is part of the model's public metadata. Because the bank decrypts the
// linear score (the logit of the probability of default), PointsFromLogit is
// the numerically safe entry point: ln(odds) = -logit, with no sigmoid and no
// overflow at extreme scores.
package scorecard
