"""The standard Salesforce objects and fields sfconnector reads or writes, with their describe() types.

The DX source under `salesforce/` holds only custom objects and the custom fields added to standard objects;
this list adds the standard fields the connector and admins' rules refer to, so a config can be checked
offline. An org's own extra fields can be declared with `mapping.additional_fields`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

_SYSTEM = {
    "Id": "id",
    "CreatedDate": "datetime",
    "CreatedById": "reference",
    "LastModifiedDate": "datetime",
    "LastModifiedById": "reference",
    "SystemModstamp": "datetime",
    "IsDeleted": "boolean",
}

# Fields every custom object has besides its custom fields (platform events have their own set).
CUSTOM_OBJECT_FIELDS: Final = MappingProxyType({**_SYSTEM, "Name": "string", "OwnerId": "reference"})
PLATFORM_EVENT_FIELDS: Final = MappingProxyType(
    {"ReplayId": "string", "CreatedDate": "datetime", "CreatedById": "reference", "EventUuid": "string"}
)

_PERSON = {
    "FirstName": "string",
    "LastName": "string",
    "Name": "string",
    "Salutation": "picklist",
    "Title": "string",
    "Email": "email",
    "Phone": "phone",
    "MobilePhone": "phone",
    "HasOptedOutOfEmail": "boolean",
    "DoNotCall": "boolean",
    "LeadSource": "picklist",
    "Description": "textarea",
    "OwnerId": "reference",
}

_ADDRESS = {
    "Street": "textarea",
    "City": "string",
    "State": "string",
    "PostalCode": "string",
    "Country": "string",
}

STANDARD_FIELDS: Final = MappingProxyType(
    {
        "Lead": MappingProxyType(
            {
                **_SYSTEM,
                **_PERSON,
                **_ADDRESS,
                "Company": "string",
                "Status": "picklist",
                "Industry": "picklist",
                "Rating": "picklist",
                "AnnualRevenue": "currency",
                "NumberOfEmployees": "int",
                "Website": "url",
                "IsConverted": "boolean",
                "ConvertedDate": "date",
                "ConvertedAccountId": "reference",
                "ConvertedContactId": "reference",
                "ConvertedOpportunityId": "reference",
                "IsUnreadByOwner": "boolean",
                "LastActivityDate": "date",
            }
        ),
        "Contact": MappingProxyType(
            {
                **_SYSTEM,
                **_PERSON,
                "AccountId": "reference",
                "Department": "string",
                "MailingStreet": "textarea",
                "MailingCity": "string",
                "MailingState": "string",
                "MailingPostalCode": "string",
                "MailingCountry": "string",
            }
        ),
        "Account": MappingProxyType(
            {
                **_SYSTEM,
                "Name": "string",
                "OwnerId": "reference",
                "Type": "picklist",
                "Industry": "picklist",
                "Website": "url",
                "Phone": "phone",
                "AnnualRevenue": "currency",
                "NumberOfEmployees": "int",
            }
        ),
        "Opportunity": MappingProxyType(
            {
                **_SYSTEM,
                "Name": "string",
                "OwnerId": "reference",
                "AccountId": "reference",
                "ContactId": "reference",
                "StageName": "picklist",
                "Amount": "currency",
                "CloseDate": "date",
                "Probability": "percent",
                "Type": "picklist",
                "LeadSource": "picklist",
                "IsClosed": "boolean",
                "IsWon": "boolean",
                "Description": "textarea",
            }
        ),
        "User": MappingProxyType(
            {
                **_SYSTEM,
                "Username": "string",
                "Name": "string",
                "FirstName": "string",
                "LastName": "string",
                "Email": "email",
                "Alias": "string",
                "IsActive": "boolean",
                "ManagerId": "reference",
                "ProfileId": "reference",
                "UserRoleId": "reference",
                "Title": "string",
                "Department": "string",
            }
        ),
        "Group": MappingProxyType(
            {**_SYSTEM, "Name": "string", "DeveloperName": "string", "Type": "picklist", "Email": "email"}
        ),
        "Task": MappingProxyType(
            {
                **_SYSTEM,
                "OwnerId": "reference",
                "Subject": "string",
                "WhoId": "reference",
                "WhatId": "reference",
                "Status": "picklist",
                "Priority": "picklist",
                "ActivityDate": "date",
                "Description": "textarea",
                "IsClosed": "boolean",
            }
        ),
    }
)
