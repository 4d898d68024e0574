"""Files that are not code: the icon, the Linux .desktop entry, the Qt style sheet. Installed as the
`ganstudio_resources` package and found with importlib.resources, so they work from a wheel too."""
