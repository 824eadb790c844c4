"""The packager: one message per finished video job, its renditions remuxed into an HLS ladder with a poster and
thumbnails."""
