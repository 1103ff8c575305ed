/**
 * One row of each SWE dataset the swe-smith-oracle environment reads, in the column types its Hub dataset card
 * declares (`dataset_info.features`): SWE-bench/SWE-smith (test lists are `list: string`, no base_commit),
 * princeton-nlp/SWE-bench_Verified (every column a string, test lists JSON-encoded), SWE-Gym/SWE-Gym (SWE-bench's
 * columns, test lists as lists) and nebius/SWE-rebench (SWE-bench's columns, test lists as lists, `install_config`
 * a struct). Values have the published shape, shortened. `schemaOf` writes the parquet schema the Hub's converter
 * (pyarrow) writes for those types: strings as UTF8 byte arrays, lists as 3-level LIST groups, structs as groups.
 */
import type { SchemaElement } from "hyparquet";
import type { SweSmithItem } from "../../../src/envs/swe-smith-oracle/item.ts";

type Kind = "string" | "strings" | "boolean" | { [field: string]: Kind };

export interface PublishedColumn {
  name: string;
  kind: Kind;
  /** One row's value, as parquet holds it. */
  data: unknown[];
  /** The same value as the dataset's JSONL export holds it, when it differs. */
  jsonl?: unknown;
}

export interface PublishedDataset {
  name: string;
  split: string;
  columns: PublishedColumn[];
  /** What the environment makes of the row. */
  expected: {
    id: string;
    repo: string;
    given: string;
    pristine: string;
    patchIsReversed: boolean;
    testPatch: boolean;
    failToPass: SweSmithItem["FAIL_TO_PASS"];
    passToPass: SweSmithItem["PASS_TO_PASS"];
    profile: string;
    command: string;
  };
}

function schemaElements(name: string, kind: Kind): SchemaElement[] {
  if (kind === "string") return [{ name, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" }];
  if (kind === "boolean") return [{ name, type: "BOOLEAN", repetition_type: "OPTIONAL" }];
  if (kind === "strings")
    return [
      { name, repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
    ];
  const fields = Object.entries(kind);
  return [{ name, repetition_type: "OPTIONAL", num_children: fields.length }, ...fields.flatMap(([field, k]) => schemaElements(field, k))];
}

export function schemaOf(columns: readonly PublishedColumn[]): SchemaElement[] {
  return [{ name: "root", num_children: columns.length }, ...columns.flatMap((column) => schemaElements(column.name, column.kind))];
}

const text = (name: string, value: string): PublishedColumn => ({ name, kind: "string", data: [value] });
const list = (name: string, value: string[]): PublishedColumn => ({ name, kind: "strings", data: [value] });

const SMITH_ID = "oauthlib__oauthlib.1fd52536.combine_file__2nfzwp19";
const SMITH_F2P = ["tests/oauth1/rfc5849/test_client.py::ClientRealmTests::test_client_realm_sign_with_additional_realm"];
const SMITH_P2P = ["tests/oauth1/rfc5849/test_client.py::ClientConstructorTests::test_convert_to_unicode_resource_owner"];
const VERIFIED_F2P = ["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"];
const VERIFIED_P2P = ["astropy/modeling/tests/test_separable.py::test_coord_matrix"];
const GYM_F2P = ["tests/test_ssm/test_ssm_boto3.py::test_describe_parameters__multiple_tags"];
const REBENCH_F2P = ["tests/test_utils.py::test_parse_params"];
const REBENCH_CMD = "pytest --no-header -rA --tb=line --color=no -p no:cacheprovider -W ignore::DeprecationWarning";
const testPatch = (path: string) => `diff --git a/${path} b/${path}\n--- a/${path}\n+++ b/${path}\n@@ -1 +1,2 @@\n x\n+y\n`;

export const PUBLISHED: readonly PublishedDataset[] = [
  {
    name: "SWE-bench/SWE-smith",
    split: "train",
    columns: [
      text("instance_id", SMITH_ID),
      text("repo", "swesmith/oauthlib__oauthlib.1fd52536"),
      text("patch", "diff --git a/oauthlib/oauth1/rfc5849/__init__.py b/oauthlib/oauth1/rfc5849/__init__.py\n"),
      list("FAIL_TO_PASS", SMITH_F2P),
      list("PASS_TO_PASS", SMITH_P2P),
      text("created_at", "2025-03-14T22:49:39.036738"),
      text("image_name", "jyangballin/swesmith.x86_64.oauthlib_1776_oauthlib.1fd52536"),
      text("problem_statement", "Client realm is not used when signing a request."),
    ],
    expected: {
      id: SMITH_ID,
      repo: "swesmith/oauthlib__oauthlib.1fd52536",
      given: `refs/hermes/tasks/${SMITH_ID}`,
      pristine: `refs/hermes/tasks/${SMITH_ID}~1`,
      patchIsReversed: true,
      testPatch: false,
      failToPass: SMITH_F2P,
      passToPass: SMITH_P2P,
      profile: "pytest",
      command: "python3 -m pytest -q",
    },
  },
  {
    name: "princeton-nlp/SWE-bench_Verified",
    split: "test",
    columns: [
      text("repo", "astropy/astropy"),
      text("instance_id", "astropy__astropy-12907"),
      text("base_commit", "d16bfe05a744909de4b27f5875fe0d4ed41ce607"),
      text("patch", "diff --git a/astropy/modeling/separable.py b/astropy/modeling/separable.py\n"),
      text("test_patch", testPatch("astropy/modeling/tests/test_separable.py")),
      text("problem_statement", "Modeling's `separability_matrix` does not compute separability correctly for nested CompoundModels"),
      text("hints_text", ""),
      text("created_at", "2022-03-03T15:14:54Z"),
      text("version", "4.3"),
      text("FAIL_TO_PASS", JSON.stringify(VERIFIED_F2P)),
      text("PASS_TO_PASS", JSON.stringify(VERIFIED_P2P)),
      text("environment_setup_commit", "298ccb478e6bf092953bca67a3d29dc6c35f6752"),
      text("difficulty", "15 min - 1 hour"),
    ],
    expected: {
      id: "astropy__astropy-12907",
      repo: "astropy/astropy",
      given: "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
      pristine: "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
      patchIsReversed: false,
      testPatch: true,
      failToPass: VERIFIED_F2P,
      passToPass: VERIFIED_P2P,
      profile: "pytest",
      command: "python3 -m pytest -q",
    },
  },
  {
    name: "SWE-Gym/SWE-Gym",
    split: "train",
    columns: [
      text("instance_id", "getmoto__moto-5752"),
      text("hints_text", ""),
      text("patch", "diff --git a/moto/ssm/models.py b/moto/ssm/models.py\n"),
      text("test_patch", testPatch("tests/test_ssm/test_ssm_boto3.py")),
      text("created_at", "2022-12-10 20:23:01"),
      text("problem_statement", "describe_parameters depends on filter order, but shouldn't"),
      text("repo", "getmoto/moto"),
      text("base_commit", "b2300f1eae1323e3e8bc45f97e530ce129dff12e"),
      text("version", "4.0"),
      list("PASS_TO_PASS", []),
      list("FAIL_TO_PASS", GYM_F2P),
    ],
    expected: {
      id: "getmoto__moto-5752",
      repo: "getmoto/moto",
      given: "b2300f1eae1323e3e8bc45f97e530ce129dff12e",
      pristine: "b2300f1eae1323e3e8bc45f97e530ce129dff12e",
      patchIsReversed: false,
      testPatch: true,
      failToPass: GYM_F2P,
      passToPass: [],
      profile: "pytest",
      command: "python3 -m pytest -q",
    },
  },
  {
    name: "nebius/SWE-rebench",
    split: "test",
    columns: [
      text("instance_id", "0b01001001__spectree-64"),
      text("base_commit", "a091fab020ac26548250c907bae0855273a98778"),
      text("created_at", "2020-10-12 13:21:50"),
      text("environment_setup_commit", "a091fab020ac26548250c907bae0855273a98778"),
      text("hints_text", ""),
      text("patch", "diff --git a/spectree/utils.py b/spectree/utils.py\n"),
      text("problem_statement", "[BUG] description for query parameters can not show in swagger ui"),
      text("repo", "0b01001001/spectree"),
      text("test_patch", testPatch("tests/test_utils.py")),
      text("version", "0.3"),
      (() => {
        const config = {
          install: "pip install -e .[flask,falcon,starlette]",
          log_parser: "parse_log_pytest",
          no_use_env: false,
          pip_packages: ["pytest"],
          python: "3.9",
          test_cmd: REBENCH_CMD,
        };
        const kind: Kind = {
          install: "string",
          log_parser: "string",
          no_use_env: "boolean",
          pip_packages: "strings",
          python: "string",
          test_cmd: "string",
        };
        // Some exports of the dataset carry it as a JSON string.
        return { name: "install_config", kind, data: [config], jsonl: JSON.stringify(config) };
      })(),
      list("FAIL_TO_PASS", REBENCH_F2P),
      list("PASS_TO_PASS", []),
      text("license_name", "Apache License 2.0"),
    ],
    expected: {
      id: "0b01001001__spectree-64",
      repo: "0b01001001/spectree",
      given: "a091fab020ac26548250c907bae0855273a98778",
      pristine: "a091fab020ac26548250c907bae0855273a98778",
      patchIsReversed: false,
      testPatch: true,
      failToPass: REBENCH_F2P,
      passToPass: [],
      profile: "pytest",
      command: REBENCH_CMD,
    },
  },
];
