"""Identity and tenancy: consortiums, sites and the AE titles their modalities call from."""
