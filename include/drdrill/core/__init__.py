"""The core every drill shares: estate, journal, checks, runners, scratch, canary, kill switch, target locks."""
