"""A local Salesforce org: REST, OAuth, SOQL and CometD streaming over real HTTPS.

Only the CLI's `emulator` and `demo` commands, the tests and the benchmarks import it;
the daemon never does.
"""
