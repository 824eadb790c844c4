"""The local CloudFront: the program's distribution on 127.0.0.1, with its signed URLs and cookies, its CloudFront
Functions, and S3 read through its origin access control."""
