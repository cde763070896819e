"""The SQL index: consortiums, sites, the instance hierarchy, quarantine, changes and jobs."""
