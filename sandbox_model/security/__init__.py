"""The security model: the rule catalog and the normalized view its checks read."""
