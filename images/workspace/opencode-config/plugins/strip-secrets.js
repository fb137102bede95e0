// Baked read-only into the workspace image's OpenCode config directory (XDG_CONFIG_HOME/opencode).
// User-initiated shells (the web terminal, `!cmd` in a session) inherit the server's environment;
// this removes the stack's secrets from it. It does not stop anything else the server's UID runs
// from reading them (/proc/<server pid>/environ): see the README, "What runs where". The model API
// key is not among them: the workspace never has it (the model gateway adds it).
const SECRETS = ["EXECUTOR_TOKEN", "OPENCODE_SERVER_PASSWORD", "OPENCODE_CONFIG_CONTENT"];
// The header secrets of the user's MCP servers (workspace.mcp_servers): one variable per mcp_secrets
// entry, all named with this prefix (components/opencode_config.py, MCP_SECRET_ENV_PREFIX).
const SECRET_PREFIXES = ["OPENCODE_SANDBOX_MCP_SECRET_"];

export const StripSecretsFromShells = async () => ({
  "shell.env": async (_input, output) => {
    for (const key of SECRETS) output.env[key] = undefined;
    for (const key of [...Object.keys(process.env), ...Object.keys(output.env)]) {
      if (SECRET_PREFIXES.some((prefix) => key.startsWith(prefix))) output.env[key] = undefined;
    }
  },
});
