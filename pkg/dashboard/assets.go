package dashboard

import "embed"

// assets are the single-page app: vanilla JS, SVG and CSS, no CDN.
//
//go:embed assets
var assets embed.FS
