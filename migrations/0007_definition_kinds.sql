-- Prompts and resource templates are fingerprinted like tools (docs/tool-integrity.md): each
-- change row says what the definition is. Rows written before are tools.

ALTER TABLE tool_definition_changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'tool'; -- tool, prompt, resource_template
