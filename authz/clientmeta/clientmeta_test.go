package clientmeta

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGrantTypes(t *testing.T) {
	tests := []struct {
		name  string
		asked []string
		want  []string
		err   bool
	}{
		{"default", nil, []string{GrantAuthorizationCode}, false},
		{"unsupported dropped", []string{"urn:ietf:params:oauth:grant-type:device_code",
			GrantRefreshToken, GrantAuthorizationCode},
			[]string{GrantAuthorizationCode, GrantRefreshToken}, false},
		{"no authorization_code", []string{GrantRefreshToken}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GrantTypes(tt.asked)
			if (err != nil) != tt.err {
				t.Fatalf("GrantTypes(%q) error %v, want error %v", tt.asked, err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GrantTypes(%q) (-want +got):\n%s", tt.asked, diff)
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		name string
		s    string
		ok   bool
	}{
		{"plain", "Claude app", true},
		{"too long", strings.Repeat("a", 11), false},
		{"invalid UTF-8", "a\xffb", false},
		{"control", "a\nb", false},
		{"bidi override", "a\u202eb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckText(tt.s, 10); (err == nil) != tt.ok {
				t.Errorf("CheckText(%q) = %v, want ok %v", tt.s, err, tt.ok)
			}
		})
	}
}

func TestIsWebURL(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"https://app.example/", true},
		{"http://app.example", true},
		{"", false},
		{"ftp://app.example", false},
		{"https://user@app.example", false},
		{"/relative", false},
		{"https://app.example/" + strings.Repeat("a", 40), false},
	}
	for _, tt := range tests {
		if got := IsWebURL(tt.s, 40); got != tt.ok {
			t.Errorf("IsWebURL(%q) = %v, want %v", tt.s, got, tt.ok)
		}
	}
}

func TestDedupeAndTruncate(t *testing.T) {
	if diff := cmp.Diff([]string{"b", "a"}, Dedupe([]string{"b", "a", "b", "a"})); diff != "" {
		t.Errorf("Dedupe (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"aé", 2, "a…"}, // é is two bytes: the cut moves back to a rune start
	} {
		if got := Truncate(tt.s, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
