//! DAGs as Airflow's DAG processor serialized them: the `serialized_dag` table, one
//! row per `dag_version` (`airflow/models/serialized_dag.py`, `dag_version.py`,
//! `dagbag.py`), read without Python.
//!
//! The row holds `json.dumps(SerializedDAG.to_dict(dag))` in `data`, or, under
//! `[core] compress_serialized_dags`, the same bytes zlib-compressed in
//! `data_compressed` (and `data` NULL). Of that document, [`SerializedDag`] gives
//! typed access to what the Execution API needs: the tasks (id, operator name,
//! setup/teardown, mapped, asset inlets and outlets), the task groups (nested, with
//! their ids as Airflow computes them), `fail_fast` and the timetable's serialized form.
//! Anything else stays reachable through [`SerializedDag::data`].

use serde_json::{Map, Value};
use sqlx::Row as _;
use uuid::Uuid;

use super::sql::{parse_uuid, sql, uuid_param};
use super::{Store, StoreError};

/// Decompressed size beyond which a `data_compressed` value is refused (a DAG of
/// tens of thousands of tasks is a few MiB).
const MAX_DECOMPRESSED: usize = 256 << 20;

/// A DAG as serialized by Airflow, one version of it.
#[derive(Clone, Debug, PartialEq)]
pub struct SerializedDag {
    /// The DAG id.
    pub dag_id: String,
    /// The `dag_version` this row belongs to.
    pub dag_version_id: Uuid,
    /// That version's `version_number`.
    pub version_number: i64,
    /// `dag.fail_fast` (absent means `false`, as Airflow omits defaults).
    pub fail_fast: bool,
    /// The timetable's serialized form (`{"__type": "airflow.timetables....", "__var": {...}}`),
    /// which only Python can evaluate.
    pub timetable: Option<Value>,
    /// The tasks, in serialized order.
    pub tasks: Vec<SerializedTask>,
    /// The root task group (`group_id` `None`), holding every task and group.
    pub task_group: TaskGroup,
    /// The whole document (`{"__version": 3, "dag": {...}}`).
    pub data: Value,
}

/// One task (operator) of a serialized DAG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerializedTask {
    /// Its id, with its groups' prefixes (`group.inner.task`).
    pub task_id: String,
    /// Airflow's `operator_name`: `_operator_name` (`@task`) or else `task_type`.
    pub operator_name: String,
    /// `task_type`: the operator's class name.
    pub task_type: String,
    /// Whether it is a setup task.
    pub is_setup: bool,
    /// Whether it is a teardown task.
    pub is_teardown: bool,
    /// Whether it is a mapped task (`.expand()`).
    pub is_mapped: bool,
    /// Its inlets.
    pub inlets: Vec<AssetLike>,
    /// Its outlets.
    pub outlets: Vec<AssetLike>,
}

/// An inlet or outlet of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssetLike {
    /// An `Asset` (`__type` `asset`): what `validate-inlets-and-outlets` checks.
    Asset(AssetKey),
    /// An `AssetAlias`, by name.
    Alias(String),
    /// Anything else (`asset_ref`, `asset_any`, ...), by its `__type`.
    Other(String),
}

/// An asset's identity and group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetKey {
    /// Its name.
    pub name: String,
    /// Its URI.
    pub uri: String,
    /// Its group (`asset` by default).
    pub group: String,
}

/// A task group: the tasks directly in it, and its child groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskGroup {
    /// Its id as Airflow computes it (`parent.child` when the parent prefixes its
    /// children); `None` for the root group.
    pub group_id: Option<String>,
    /// Ids of the tasks directly in this group.
    pub task_ids: Vec<String>,
    /// Its child groups.
    pub groups: Vec<TaskGroup>,
}

impl TaskGroup {
    /// This group, or the one nested in it with `group_id` (Airflow's `dag.task_group_dict`).
    pub fn find(&self, group_id: &str) -> Option<&TaskGroup> {
        if self.group_id.as_deref() == Some(group_id) {
            return Some(self);
        }
        self.groups.iter().find_map(|g| g.find(group_id))
    }

    /// Every task id in this group and the groups nested in it (Airflow's `iter_tasks`).
    pub fn all_task_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.task_ids.iter().map(String::as_str).collect();
        for group in &self.groups {
            ids.extend(group.all_task_ids());
        }
        ids
    }
}

impl SerializedDag {
    /// Parses Airflow's serialized form (the `data` document).
    pub fn from_document(
        dag_version_id: Uuid,
        version_number: i64,
        data: Value,
    ) -> Result<SerializedDag, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("serialized DAG: {what}"));
        let dag = data
            .get("dag")
            .and_then(Value::as_object)
            .ok_or_else(|| corrupt("no `dag` object"))?;
        let dag_id = dag
            .get("dag_id")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("no `dag_id`"))?
            .to_owned();
        let tasks = match dag.get("tasks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(tasks)) => tasks
                .iter()
                .map(|t| parse_task(unwrap_var(t)))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(corrupt("`tasks` is not a list")),
        };
        let task_group = match dag.get("task_group") {
            Some(Value::Object(root)) => parse_group(root, None)?,
            // No group recorded: every task sits in the root group.
            _ => TaskGroup {
                group_id: None,
                task_ids: tasks.iter().map(|t| t.task_id.clone()).collect(),
                groups: Vec::new(),
            },
        };
        Ok(SerializedDag {
            fail_fast: dag
                .get("fail_fast")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            timetable: dag.get("timetable").filter(|t| !t.is_null()).cloned(),
            dag_id,
            dag_version_id,
            version_number,
            tasks,
            task_group,
            data,
        })
    }

    /// The task with this id.
    pub fn task(&self, task_id: &str) -> Option<&SerializedTask> {
        self.tasks.iter().find(|t| t.task_id == task_id)
    }
}

/// `{"__type": ..., "__var": {...}}` -> the `__var`; anything else as it is.
fn unwrap_var(value: &Value) -> &Value {
    match value.get("__var") {
        Some(inner) if value.get("__type").is_some() => inner,
        _ => value,
    }
}

fn parse_task(task: &Value) -> Result<SerializedTask, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("serialized DAG task: {what}"));
    let task = task
        .as_object()
        .ok_or_else(|| corrupt("not an object".into()))?;
    let text = |key: &str| task.get(key).and_then(Value::as_str);
    let flag = |key: &str| task.get(key).and_then(Value::as_bool).unwrap_or(false);
    let task_id = text("task_id")
        .ok_or_else(|| corrupt("no `task_id`".into()))?
        .to_owned();
    // Older documents spell some fields with a leading underscore.
    let task_type = text("task_type").or(text("_task_type")).unwrap_or_default();
    let operator_name = text("_operator_name")
        .filter(|n| !n.is_empty())
        .unwrap_or(task_type)
        .to_owned();
    let assets = |keys: [&str; 2]| -> Result<Vec<AssetLike>, StoreError> {
        match keys.iter().find_map(|k| task.get(*k)) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(parse_asset_like).collect(),
            Some(_) => Err(corrupt(format!(
                "`{}` of `{task_id}` is not a list",
                keys[0]
            ))),
        }
    };
    Ok(SerializedTask {
        inlets: assets(["inlets", "_inlets"])?,
        outlets: assets(["outlets", "_outlets"])?,
        is_setup: flag("is_setup"),
        is_teardown: flag("is_teardown"),
        is_mapped: flag("_is_mapped"),
        task_type: task_type.to_owned(),
        operator_name,
        task_id,
    })
}

fn parse_asset_like(item: &Value) -> Result<AssetLike, StoreError> {
    let kind = item.get("__type").and_then(Value::as_str).unwrap_or("");
    let var = unwrap_var(item);
    let text = |key: &str| var.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(match kind {
        "asset" => {
            let (name, uri) = match (text("name"), text("uri")) {
                (Some(name), Some(uri)) => (name, uri),
                // Asset(uri=...) names itself after its URI and the reverse.
                (Some(name), None) => (name.clone(), name),
                (None, Some(uri)) => (uri.clone(), uri),
                (None, None) => {
                    return Err(StoreError::Corrupt(format!(
                        "serialized DAG: an asset without name or uri: {item}"
                    )));
                }
            };
            AssetLike::Asset(AssetKey {
                name,
                uri,
                group: text("group").unwrap_or_else(|| "asset".to_owned()),
            })
        }
        "asset_alias" => AssetLike::Alias(text("name").unwrap_or_default()),
        other => AssetLike::Other(other.to_owned()),
    })
}

/// A group's id as Airflow's `SerializedTaskGroup.group_id` computes it.
fn group_id(local: Option<&str>, parent: Option<(&Option<String>, bool)>) -> Option<String> {
    let local = local.filter(|l| !l.is_empty())?;
    match parent {
        Some((Some(parent_id), true)) => Some(format!("{parent_id}.{local}")),
        _ => Some(local.to_owned()),
    }
}

fn parse_group(
    group: &Map<String, Value>,
    parent: Option<(&Option<String>, bool)>,
) -> Result<TaskGroup, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("serialized DAG task group: {what}"));
    let id = group_id(group.get("_group_id").and_then(Value::as_str), parent);
    let prefix = group
        .get("prefix_group_id")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut out = TaskGroup {
        group_id: id,
        task_ids: Vec::new(),
        groups: Vec::new(),
    };
    let children = match group.get("children") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(children)) => children,
        Some(_) => return Err(corrupt("`children` is not an object")),
    };
    for child in children.values() {
        let pair = child.as_array().filter(|p| p.len() == 2);
        match pair.map(|p| (p[0].as_str(), &p[1])) {
            Some((Some("operator"), Value::String(task_id))) => out.task_ids.push(task_id.clone()),
            Some((Some("taskgroup"), Value::Object(nested))) => {
                let nested = parse_group(nested, Some((&out.group_id, prefix)))?;
                out.groups.push(nested);
            }
            _ => return Err(corrupt(&format!("unexpected child {child}"))),
        }
    }
    Ok(out)
}

/// The stored document: `data`, or `data_compressed` inflated.
fn document(data: Option<String>, compressed: Option<Vec<u8>>) -> Result<Value, StoreError> {
    let text = match (compressed.filter(|c| !c.is_empty()), data) {
        (Some(compressed), _) => {
            let bytes = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(
                &compressed,
                MAX_DECOMPRESSED,
            )
            .map_err(|e| {
                StoreError::Corrupt(format!("serialized DAG: zlib data: {:?}", e.status))
            })?;
            String::from_utf8(bytes)
                .map_err(|e| StoreError::Corrupt(format!("serialized DAG: not UTF-8: {e}")))?
        }
        (None, Some(text)) => text,
        (None, None) => {
            return Err(StoreError::Corrupt(
                "serialized DAG: neither data nor data_compressed".into(),
            ));
        }
    };
    let mut value: Value = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("serialized DAG: not JSON: {e}")))?;
    // SQLAlchemy's JSON type on some drivers leaves a JSON string holding the document.
    if let Value::String(inner) = &value {
        value = serde_json::from_str(inner)
            .map_err(|e| StoreError::Corrupt(format!("serialized DAG: not JSON: {e}")))?;
    }
    Ok(value)
}

impl Store {
    /// The DAG's newest serialized version, as `SerializedDagModel.get` picks it: the row of
    /// the `dag_version` with the highest `version_number`. `None` if Airflow never
    /// serialized the DAG.
    pub async fn latest_serialized_dag(
        &self,
        dag_id: &str,
    ) -> Result<Option<SerializedDag>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT CAST(s.data AS TEXT) AS data, s.data_compressed, \
             CAST(s.dag_version_id AS TEXT) AS dag_version_id, v.version_number \
             FROM serialized_dag s JOIN dag_version v ON s.dag_version_id = v.id \
             WHERE s.dag_id = $1 ORDER BY v.version_number DESC LIMIT 1"
                ))
                .bind(dag_id)
            })
            .await?;
        row.map(|row| read_row(&row)).transpose()
    }

    /// The serialized DAG of one `dag_version` (`DBDagBag._get_dag`).
    pub async fn serialized_dag_version(
        &self,
        dag_version_id: Uuid,
    ) -> Result<Option<SerializedDag>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT CAST(s.data AS TEXT) AS data, s.data_compressed, \
             CAST(s.dag_version_id AS TEXT) AS dag_version_id, v.version_number \
             FROM serialized_dag s JOIN dag_version v ON s.dag_version_id = v.id \
             WHERE s.dag_version_id = $1::uuid"
                ))
                .bind(uuid_param(dag_version_id))
            })
            .await?;
        row.map(|row| read_row(&row)).transpose()
    }

    /// The serialized DAG a DAG run resolves to (`DBDagBag.get_dag_for_run`): the version
    /// that created the run, or the DAG's latest version when the run records no bundle
    /// version or no creating version (runs of unversioned bundles, runs from Airflow 2).
    pub async fn serialized_dag_for_run(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<SerializedDag>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT CAST(created_dag_version_id AS TEXT) AS version, bundle_version \
             FROM dag_run WHERE dag_id = $1 AND run_id = $2"
                ))
                .bind(dag_id)
                .bind(run_id)
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let version: Option<String> = row.try_get("version")?;
        let bundle_version: Option<String> = row.try_get("bundle_version")?;
        let version = match (version.filter(|v| !v.is_empty()), bundle_version) {
            (Some(version), Some(b)) if !b.is_empty() => Some(parse_uuid(&version)?),
            _ => {
                let latest: Option<String> = self
                    .read_optional(|| {
                        sqlx::query(sql!(
                            self.backend,
                            "SELECT CAST(id AS TEXT) FROM dag_version WHERE dag_id = $1 \
                             ORDER BY version_number DESC LIMIT 1"
                        ))
                        .bind(dag_id)
                    })
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                latest.as_deref().map(parse_uuid).transpose()?
            }
        };
        match version {
            Some(version) => self.serialized_dag_version(version).await,
            None => Ok(None),
        }
    }
}

fn read_row(row: &sqlx::any::AnyRow) -> Result<SerializedDag, StoreError> {
    let data: Option<String> = row.try_get("data")?;
    let compressed: Option<Vec<u8>> = row.try_get("data_compressed")?;
    let version: String = row.try_get("dag_version_id")?;
    let number: i64 = row.try_get("version_number")?;
    SerializedDag::from_document(parse_uuid(&version)?, number, document(data, compressed)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Airflow 3.3.2's serialization of a DAG with nested groups, a mapped task, a
    /// setup/teardown pair and assets (trimmed to the fields read here).
    fn sample() -> Value {
        let op = |var: Value| json!({"__type": "operator", "__var": var});
        json!({"__version": 3, "dag": {
            "dag_id": "sample",
            "fail_fast": true,
            "timetable": {"__type": "airflow.timetables.simple.NullTimetable", "__var": {}},
            "task_group": {"_group_id": null, "prefix_group_id": true, "children": {
                "setup": ["operator", "setup"],
                "group": ["taskgroup", {"_group_id": "group", "prefix_group_id": true, "children": {
                    "group.first": ["operator", "group.first"],
                    "group.inner": ["taskgroup", {"_group_id": "inner", "prefix_group_id": false,
                        "children": {"group.inner.second": ["operator", "group.inner.second"],
                                     "deep": ["taskgroup", {"_group_id": "deep", "children": {}}]}}],
                }}],
            }},
            "tasks": [
                op(json!({"task_id": "setup", "task_type": "EmptyOperator", "is_setup": true})),
                op(json!({"task_id": "group.first", "task_type": "EmptyOperator",
                    "inlets": [{"__type": "asset", "__var": {"name": "n", "uri": "s3://b/k", "group": "asset", "extra": {}}}],
                    "outlets": [{"__type": "asset_alias", "__var": {"name": "alias", "group": "asset"}},
                                {"__type": "asset", "__var": {"uri": "file:///only-uri"}}]})),
                op(json!({"task_id": "group.inner.second", "task_type": "_PythonDecoratedOperator",
                    "_operator_name": "@task", "_is_mapped": true, "is_teardown": true})),
            ],
        }})
    }

    #[test]
    fn reads_tasks_groups_and_flags() {
        let id = Uuid::new_v4();
        let dag = SerializedDag::from_document(id, 3, sample()).unwrap();
        assert_eq!(dag.dag_id, "sample");
        assert!(dag.fail_fast);
        assert_eq!(
            dag.timetable.as_ref().unwrap()["__type"],
            "airflow.timetables.simple.NullTimetable"
        );
        let first = dag.task("group.first").unwrap();
        assert_eq!(first.operator_name, "EmptyOperator");
        assert_eq!(
            first.inlets,
            vec![AssetLike::Asset(AssetKey {
                name: "n".into(),
                uri: "s3://b/k".into(),
                group: "asset".into()
            })]
        );
        assert_eq!(first.outlets[0], AssetLike::Alias("alias".into()));
        let AssetLike::Asset(only_uri) = &first.outlets[1] else {
            panic!("{:?}", first.outlets[1]);
        };
        assert_eq!(only_uri.name, "file:///only-uri");
        let second = dag.task("group.inner.second").unwrap();
        assert_eq!(second.operator_name, "@task");
        assert!(second.is_mapped && second.is_teardown && !second.is_setup);
        assert!(dag.task("setup").unwrap().is_setup);

        let root = &dag.task_group;
        assert_eq!(root.group_id, None);
        let mut all = root.all_task_ids();
        all.sort_unstable();
        assert_eq!(all, ["group.first", "group.inner.second", "setup"]);
        assert_eq!(
            root.find("group").unwrap().all_task_ids().len(),
            2,
            "nested groups count"
        );
        assert_eq!(
            root.find("group.inner").unwrap().all_task_ids(),
            ["group.inner.second"]
        );
        // `inner` does not prefix its children: `deep`, not `group.inner.deep`.
        assert!(root.find("deep").is_some());
        assert!(root.find("group.inner.deep").is_none());
        assert!(root.find("nope").is_none());
    }

    #[test]
    fn compressed_and_plain_documents_read_the_same() {
        let text = sample().to_string();
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(text.as_bytes(), 6);
        assert_eq!(
            document(None, Some(compressed)).unwrap(),
            document(Some(text.clone()), None).unwrap()
        );
        // A JSON string holding the document (as some drivers store it).
        let quoted = Value::String(text).to_string();
        assert_eq!(document(Some(quoted), None).unwrap(), sample());
        for bad in [
            document(None, None),
            document(None, Some(vec![1, 2, 3])),
            document(Some("{".into()), None),
        ] {
            assert!(matches!(bad, Err(StoreError::Corrupt(_))), "{bad:?}");
        }
        assert!(SerializedDag::from_document(Uuid::nil(), 1, json!({"dag": {}})).is_err());
    }
}
