#!/usr/bin/env python3
"""An opener for `mcp-exporter login --open-with`: GETs the authorization URL and follows its
redirects, as a browser whose person approves at once would. For authorization servers that
approve without a person (the conformance suite's, the test fixture's); the redirect lands on
the login's loopback listener.

Usage: follow-authorization-url.py URL
"""

import sys
import urllib.error
import urllib.request


def main(argv):
    if len(argv) != 2:
        print("usage: follow-authorization-url.py URL", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(argv[1], timeout=30) as answer:
            answer.read()
    except urllib.error.HTTPError as err:
        # The loopback page or the authorization server answered with an error status; the
        # login reports what the redirect said.
        print("follow-authorization-url: HTTP %d from %s" % (err.code, err.url), file=sys.stderr)
    except (urllib.error.URLError, OSError) as err:
        print("follow-authorization-url: %s" % err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
