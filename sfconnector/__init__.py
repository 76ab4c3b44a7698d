"""sfconnector: the referral-program integration daemon for Salesforce."""

__version__ = "0.1.0"
