// CloudFront Function (runtime cloudfront-js-2.0), VIEWER_RESPONSE of the playlist behaviour (components/cdn.py).
//
// A playback link is one signed playlist URL: ?Policy=...&Signature=...&Key-Pair-Id=..., a custom policy over the
// job's whole folder (outputs/{jobId}/*). A player resolves the playlist's relative URIs (variant playlists, init and
// media segments) without that query, so those requests would carry no signature and CloudFront would refuse them.
// This copies the three values into CloudFront's signed-cookie names, scoped to the job's folder, so the same
// signature goes along as cookies with every request the player makes under it (ffmpeg's HLS demuxer and browsers
// keep cookies; hls.js sends them cross-origin with withCredentials, hence SameSite=None and Secure).
//
// It grants nothing the URL did not: the behaviour trusts the key group, so CloudFront verified the query's signature
// and expiry before the request reached the origin, and a refused request never gets here. Without all three values
// (a request that came with cookies, or a canned policy) the response passes untouched.
//
// CloudFront Functions run ES5.1 (plus a few later additions) and call a top-level `handler(event)`; no modules.
var SIGNED_COOKIES = {
    'Policy': 'CloudFront-Policy',
    'Signature': 'CloudFront-Signature',
    'Key-Pair-Id': 'CloudFront-Key-Pair-Id'
};
var JOB_FOLDER = /^\/outputs\/[^\/]+\//;

function handler(event) {
    var request = event.request;
    var response = event.response;
    var query = request.querystring || {};
    var folder = JOB_FOLDER.exec(request.uri);
    if (!folder || !query['Policy'] || !query['Signature'] || !query['Key-Pair-Id']) {
        return response;
    }
    var attributes = 'Path=' + folder[0] + '; Secure; HttpOnly; SameSite=None';
    response.cookies = response.cookies || {};
    for (var parameter in SIGNED_COOKIES) {
        response.cookies[SIGNED_COOKIES[parameter]] = { value: query[parameter].value, attributes: attributes };
    }
    return response;
}
