package dataset

import (
	"errors"
	"fmt"
	"strings"
)

// USCCCharset is the GB 32100-2015 character set: the 31 characters allowed in
// a Unified Social Credit Code (no I, O, S, V, Z). A character's value in the
// check computation is its index in this string.
const USCCCharset = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// USCCLength is the length of a Unified Social Credit Code.
const USCCLength = 18

// ErrUSCCCheck is wrapped by ValidUSCC when only the check character is wrong.
var ErrUSCCCheck = errors.New("wrong USCC check character")

// usccWeights[i] = 3^i mod 31, the GB 32100-2015 weights of positions 1..17.
var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// usccValue returns the GB 32100 value of c, or -1 if c is not in the charset.
func usccValue(c byte) int {
	return strings.IndexByte(USCCCharset, c)
}

// USCCCheckChar computes the GB 32100-2015 check character (position 18) of
// the first 17 characters of a code: c18 = (31 - sum(v_i * 3^(i-1)) mod 31) mod 31.
func USCCCheckChar(first17 string) (byte, error) {
	if len(first17) != USCCLength-1 {
		return 0, fmt.Errorf("uscc: need 17 characters to compute the check character, got %d", len(first17))
	}
	sum := 0
	for i := 0; i < len(first17); i++ {
		v := usccValue(first17[i])
		if v < 0 {
			return 0, fmt.Errorf("uscc: position %d is not in the GB 32100 character set", i+1)
		}
		sum += v * usccWeights[i]
	}
	return USCCCharset[(31-sum%31)%31], nil
}

// ValidUSCC reports whether s is a well-formed Unified Social Credit Code:
// 18 characters from USCCCharset whose last character is the GB 32100-2015
// check character of the first 17. It does not check the region code against
// the GB/T 2260 list (the synthetic codes of the bundled data use region 99,
// which is not a real division) nor the embedded GB 11714 organisation-code
// check (not every issued code has one). s must already be normalised
// (see NormalizeID). Error messages never quote s, so they may leave the agent.
func ValidUSCC(s string) error {
	if len(s) != USCCLength {
		return fmt.Errorf("uscc: length %d, want %d", len(s), USCCLength)
	}
	want, err := USCCCheckChar(s[:USCCLength-1])
	if err != nil {
		return err
	}
	if usccValue(s[USCCLength-1]) < 0 {
		return fmt.Errorf("uscc: position 18 is not in the GB 32100 character set")
	}
	if s[USCCLength-1] != want {
		return fmt.Errorf("uscc: %w", ErrUSCCCheck)
	}
	return nil
}

// orgWeights are the GB 11714 organisation-code weights of the 8-digit body.
var orgWeights = [8]int{3, 7, 9, 10, 5, 8, 4, 2}

// USCCFromSeed builds a synthetic, valid USCC exactly as the shared enterprise
// data's convert.py make_uscc does, so tests and examples can make keys that
// match the bundled files:
//
//	"91" + "99" + DD(dataset) + PP(part) + body(8) + c9 (GB 11714) + c18 (GB 32100)
//	body = (48271*n + 10000019) mod 10^8, zero-padded
//
// Region prefix 99 is not a real administrative division, so a generated key
// never equals a real company's code. n >= 1 is the row number; dataset and
// part must be in 0..99. USCCFromSeed(1, 1, 1) == "91990101100482908N".
func USCCFromSeed(dataset, part, n int) (string, error) {
	if dataset < 0 || dataset > 99 || part < 0 || part > 99 {
		return "", fmt.Errorf("uscc: dataset %d and part %d must be in 0..99", dataset, part)
	}
	if n < 0 {
		return "", fmt.Errorf("uscc: seed %d must not be negative", n)
	}
	body := fmt.Sprintf("%08d", (48271*int64(n)+10000019)%100000000)
	sum := 0
	for i := 0; i < 8; i++ {
		sum += int(body[i]-'0') * orgWeights[i]
	}
	var c9 string
	switch v := 11 - sum%11; v {
	case 10:
		c9 = "X"
	case 11:
		c9 = "0"
	default:
		c9 = fmt.Sprint(v)
	}
	first17 := fmt.Sprintf("9199%02d%02d", dataset, part) + body + c9
	check, err := USCCCheckChar(first17)
	if err != nil {
		return "", err
	}
	return first17 + string(check), nil
}

// NormalizeID trims surrounding white space and upper-cases an ID, the form
// in which IDs are compared everywhere (PSI, Select, grants).
func NormalizeID(s string) string {
	return strings.ToUpper(strings.TrimSpace(s))
}
