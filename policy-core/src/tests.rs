//! Request-level tests: a real actix App with guards, the extractor and the reissue middleware.
