"""Vietnamese citizen identity: identifiers, profiles, one health book per citizen."""
