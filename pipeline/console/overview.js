// The console page module overview.js: written in the next commit.
