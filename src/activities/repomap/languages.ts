// Languages of the repository map: file extensions, prebuilt grammars (tree-sitter-wasms) and
// tag queries. The queries follow Aider's `queries/tree-sitter-*-tags.scm` convention:
//   @name.definition.<kind>  the defined name      @definition.<kind>  the whole definition
//   @name.reference.<kind>   a referenced name     @scope              a context-only block (Rust impl)
// Each query was checked against its grammar (a node type or field the grammar lacks makes
// `new Query` throw; test/repomap.test.ts compiles every query).
import { createHash } from 'node:crypto';

export type LangId = 'python' | 'javascript' | 'typescript' | 'tsx' | 'go' | 'rust' | 'java' | 'c' | 'cpp';

export interface LangSpec {
  /** File name inside tree-sitter-wasms/out/. */
  wasm: string;
  query: string;
}

const PYTHON = `
(class_definition name: (identifier) @name.definition.class) @definition.class
(function_definition name: (identifier) @name.definition.function) @definition.function
(class_definition body: (block (function_definition name: (identifier) @name.definition.method) @definition.method))
(class_definition body: (block (decorated_definition definition: (function_definition name: (identifier) @name.definition.method) @definition.method)))
(module (expression_statement (assignment left: (identifier) @name.definition.constant) @definition.constant))
(class_definition body: (block (expression_statement (assignment left: (identifier) @name.definition.field) @definition.field)))

(call function: (identifier) @name.reference.call)
(call function: (attribute attribute: (identifier) @name.reference.call))
(decorator (identifier) @name.reference.call)
(decorator (call function: (identifier) @name.reference.call))
(class_definition superclasses: (argument_list (identifier) @name.reference.class))
(class_definition superclasses: (argument_list (attribute attribute: (identifier) @name.reference.class)))
(type (identifier) @name.reference.type)
(import_from_statement name: (dotted_name (identifier) @name.reference.import))
(import_from_statement name: (aliased_import name: (dotted_name (identifier) @name.reference.import)))
(argument_list (identifier) @name.reference.value)
`;

// Shared by JavaScript, TypeScript and TSX (node types common to the three grammars).
const JS_COMMON = `
(function_declaration name: (identifier) @name.definition.function) @definition.function
(generator_function_declaration name: (identifier) @name.definition.function) @definition.function
(class_declaration name: (_) @name.definition.class) @definition.class
((method_definition name: [(property_identifier) (private_property_identifier)] @name.definition.method) @definition.method
  (#not-eq? @name.definition.method "constructor"))
(variable_declarator name: (identifier) @name.definition.function
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
(program (lexical_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant))
(program (export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant)))
(assignment_expression left: (member_expression property: (property_identifier) @name.definition.function)
  right: [(arrow_function) (function_expression)]) @definition.function
(pair key: (property_identifier) @name.definition.function value: [(arrow_function) (function_expression)]) @definition.function

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (member_expression property: (property_identifier) @name.reference.call))
(new_expression constructor: (identifier) @name.reference.class)
(new_expression constructor: (member_expression property: (property_identifier) @name.reference.class))
(import_specifier name: (identifier) @name.reference.import)
(export_specifier name: (identifier) @name.reference.export)
(arguments (identifier) @name.reference.value)
(arguments (member_expression property: (property_identifier) @name.reference.value))
`;

// JSX elements (JavaScript and TSX grammars; the TypeScript grammar has no JSX).
const JSX = `
(jsx_opening_element name: (identifier) @name.reference.class)
(jsx_self_closing_element name: (identifier) @name.reference.class)
(jsx_opening_element name: (member_expression property: (property_identifier) @name.reference.class))
(jsx_self_closing_element name: (member_expression property: (property_identifier) @name.reference.class))
`;

const JAVASCRIPT = `${JS_COMMON}${JSX}
(class_heritage (identifier) @name.reference.class)
(class_heritage (member_expression property: (property_identifier) @name.reference.class))
`;

const TS_EXTRA = `
(abstract_class_declaration name: (type_identifier) @name.definition.class) @definition.class
(interface_declaration name: (type_identifier) @name.definition.interface) @definition.interface
(type_alias_declaration name: (type_identifier) @name.definition.type) @definition.type
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(method_signature name: (property_identifier) @name.definition.method) @definition.method
(abstract_method_signature name: (property_identifier) @name.definition.method) @definition.method
(function_signature name: (identifier) @name.definition.function) @definition.function
(internal_module name: (identifier) @name.definition.module) @definition.module
(module name: (identifier) @name.definition.module) @definition.module
(public_field_definition name: (property_identifier) @name.definition.method
  value: [(arrow_function) (function_expression)]) @definition.method

(type_identifier) @name.reference.type
(extends_clause value: (identifier) @name.reference.class)
(extends_clause value: (member_expression property: (property_identifier) @name.reference.class))
`;

const TYPESCRIPT = `${JS_COMMON}${TS_EXTRA}`;
const TSX = `${TYPESCRIPT}${JSX}`;

const GO = `
(function_declaration name: (identifier) @name.definition.function) @definition.function
(method_declaration name: (field_identifier) @name.definition.method) @definition.method
(type_spec name: (type_identifier) @name.definition.type) @definition.type
(type_alias name: (type_identifier) @name.definition.type) @definition.type
(method_spec name: (field_identifier) @name.definition.method) @definition.method
(source_file (const_declaration (const_spec name: (identifier) @name.definition.constant) @definition.constant))
(source_file (var_declaration (var_spec name: (identifier) @name.definition.variable) @definition.variable))

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (selector_expression field: (field_identifier) @name.reference.call))
(call_expression function: (parenthesized_expression (identifier) @name.reference.call))
(type_identifier) @name.reference.type
(argument_list (identifier) @name.reference.value)
(argument_list (selector_expression field: (field_identifier) @name.reference.value))
`;

const RUST = `
(struct_item name: (type_identifier) @name.definition.class) @definition.class
(enum_item name: (type_identifier) @name.definition.class) @definition.class
(union_item name: (type_identifier) @name.definition.class) @definition.class
(type_item name: (type_identifier) @name.definition.type) @definition.type
(trait_item name: (type_identifier) @name.definition.interface) @definition.interface
(function_item name: (identifier) @name.definition.function) @definition.function
(impl_item body: (declaration_list (function_item name: (identifier) @name.definition.method) @definition.method))
(trait_item body: (declaration_list (function_item name: (identifier) @name.definition.method) @definition.method))
(trait_item body: (declaration_list (function_signature_item name: (identifier) @name.definition.method) @definition.method))
(mod_item name: (identifier) @name.definition.module) @definition.module
(macro_definition name: (identifier) @name.definition.macro) @definition.macro
(const_item name: (identifier) @name.definition.constant) @definition.constant
(static_item name: (identifier) @name.definition.constant) @definition.constant
(impl_item) @scope

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (field_expression field: (field_identifier) @name.reference.call))
(call_expression function: (scoped_identifier name: (identifier) @name.reference.call))
(generic_function function: (identifier) @name.reference.call)
(generic_function function: (scoped_identifier name: (identifier) @name.reference.call))
(generic_function function: (field_expression field: (field_identifier) @name.reference.call))
(macro_invocation macro: (identifier) @name.reference.call)
(type_identifier) @name.reference.type
(use_declaration argument: (scoped_identifier name: (identifier) @name.reference.import))
(use_list (identifier) @name.reference.import)
(use_list (scoped_identifier name: (identifier) @name.reference.import))
(use_as_clause path: (scoped_identifier name: (identifier) @name.reference.import))
(arguments (identifier) @name.reference.value)
`;

const JAVA = `
(class_declaration name: (identifier) @name.definition.class) @definition.class
(interface_declaration name: (identifier) @name.definition.interface) @definition.interface
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(record_declaration name: (identifier) @name.definition.class) @definition.class
(annotation_type_declaration name: (identifier) @name.definition.interface) @definition.interface
(method_declaration name: (identifier) @name.definition.method) @definition.method

(method_invocation name: (identifier) @name.reference.call)
(object_creation_expression type: (type_identifier) @name.reference.class)
(type_identifier) @name.reference.type
(method_reference (identifier) @name.reference.call .)
(import_declaration (scoped_identifier name: (identifier) @name.reference.import))
`;

// C definitions; C++ reuses them (its grammar has every C node type used here).
const C_DEFS = `
(function_definition declarator: (function_declarator declarator: (identifier) @name.definition.function)) @definition.function
(function_definition declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name.definition.function))) @definition.function
(function_definition declarator: (pointer_declarator declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name.definition.function)))) @definition.function
(declaration declarator: (function_declarator declarator: (identifier) @name.definition.function)) @definition.function
(declaration declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name.definition.function))) @definition.function
(struct_specifier name: (type_identifier) @name.definition.struct body: (_)) @definition.struct
(union_specifier name: (type_identifier) @name.definition.union body: (_)) @definition.union
(enum_specifier name: (type_identifier) @name.definition.enum body: (_)) @definition.enum
(type_definition declarator: (type_identifier) @name.definition.type) @definition.type
(preproc_def name: (identifier) @name.definition.macro) @definition.macro
(preproc_function_def name: (identifier) @name.definition.macro) @definition.macro

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (field_expression field: (field_identifier) @name.reference.call))
(type_identifier) @name.reference.type
(argument_list (identifier) @name.reference.value)
`;

const C = C_DEFS;

const CPP = `${C_DEFS}
(class_specifier name: (type_identifier) @name.definition.class body: (_)) @definition.class
(function_definition declarator: (function_declarator declarator: (field_identifier) @name.definition.method)) @definition.method
(function_definition declarator: (reference_declarator (function_declarator declarator: (field_identifier) @name.definition.method))) @definition.method
(function_definition declarator: (pointer_declarator declarator: (function_declarator declarator: (field_identifier) @name.definition.method))) @definition.method
(function_definition declarator: (function_declarator declarator: (qualified_identifier name: (identifier) @name.definition.method))) @definition.method
(function_definition declarator: (function_declarator declarator: (qualified_identifier name: (qualified_identifier name: (identifier) @name.definition.method)))) @definition.method
(function_definition declarator: (pointer_declarator declarator: (function_declarator declarator: (qualified_identifier name: (identifier) @name.definition.method)))) @definition.method
(function_definition declarator: (reference_declarator (function_declarator declarator: (qualified_identifier name: (identifier) @name.definition.method)))) @definition.method
(field_declaration declarator: (function_declarator declarator: (field_identifier) @name.definition.method)) @definition.method
(field_declaration declarator: (pointer_declarator declarator: (function_declarator declarator: (field_identifier) @name.definition.method))) @definition.method
(field_declaration declarator: (reference_declarator (function_declarator declarator: (field_identifier) @name.definition.method))) @definition.method
(namespace_definition name: (namespace_identifier) @name.definition.module) @definition.module
(alias_declaration name: (type_identifier) @name.definition.type) @definition.type

(call_expression function: (qualified_identifier name: (identifier) @name.reference.call))
(call_expression function: (template_function name: (identifier) @name.reference.call))
(call_expression function: (qualified_identifier name: (template_function name: (identifier) @name.reference.call)))
(call_expression function: (field_expression field: (template_method name: (field_identifier) @name.reference.call)))
`;

export const LANGS: Record<LangId, LangSpec> = {
  python: { wasm: 'tree-sitter-python.wasm', query: PYTHON },
  javascript: { wasm: 'tree-sitter-javascript.wasm', query: JAVASCRIPT },
  typescript: { wasm: 'tree-sitter-typescript.wasm', query: TYPESCRIPT },
  tsx: { wasm: 'tree-sitter-tsx.wasm', query: TSX },
  go: { wasm: 'tree-sitter-go.wasm', query: GO },
  rust: { wasm: 'tree-sitter-rust.wasm', query: RUST },
  java: { wasm: 'tree-sitter-java.wasm', query: JAVA },
  c: { wasm: 'tree-sitter-c.wasm', query: C },
  cpp: { wasm: 'tree-sitter-cpp.wasm', query: CPP },
};

const EXTENSIONS: Record<string, LangId> = {
  py: 'python',
  pyi: 'python',
  js: 'javascript',
  jsx: 'javascript',
  mjs: 'javascript',
  cjs: 'javascript',
  ts: 'typescript',
  mts: 'typescript',
  cts: 'typescript',
  tsx: 'tsx',
  go: 'go',
  rs: 'rust',
  java: 'java',
  c: 'c',
  // .h is shared by C and C++: the C++ grammar reads both well.
  h: 'cpp',
  cc: 'cpp',
  cpp: 'cpp',
  cxx: 'cpp',
  'c++': 'cpp',
  hh: 'cpp',
  hpp: 'cpp',
  hxx: 'cpp',
  'h++': 'cpp',
  ipp: 'cpp',
  inl: 'cpp',
};

/** The language of a repository path, by its extension (undefined: not mapped). */
export function langOf(relPath: string): LangId | undefined {
  const base = relPath.slice(relPath.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const ext = base.slice(dot + 1).toLowerCase();
  // .d.ts declaration files are definitions too; keep them (typescript).
  return Object.prototype.hasOwnProperty.call(EXTENSIONS, ext) ? EXTENSIONS[ext] : undefined;
}

/** Bumped when the tag format or the extraction logic changes (the queries are hashed in). */
const EXTRACTOR_VERSION = 2;

/** Identifies the tag format + queries: part of the cache location, so a change re-parses. */
export const TAGS_VERSION = createHash('sha1')
  .update(String(EXTRACTOR_VERSION))
  .update(JSON.stringify(LANGS))
  .digest('hex')
  .slice(0, 12);
