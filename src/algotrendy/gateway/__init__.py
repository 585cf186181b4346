"""HTTP edge: token verification, auth dependencies, rate limits, middleware, errors -> problem+json."""
