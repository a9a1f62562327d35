import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Sessions against real servers: generous per-test limits, deadlines are asserted inside tests.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // One fork per file keeps handle accounting (getActiveResourcesInfo) per file.
    pool: "forks",
    globalSetup: ["test/helpers/global-setup.ts"],
  },
});
