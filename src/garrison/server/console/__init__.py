"""The console shell: layout, navigation, security headers, section pages."""
