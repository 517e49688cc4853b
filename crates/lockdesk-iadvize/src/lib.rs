//! iAdvize's GraphQL API: closed-conversation backfill (password-grant token, pagination, rate limits) and a local stand-in server for tests and the demo
