"""Logical referral model <-> Salesforce objects and fields."""
