// The console page module rules.js: written in the next commit.
