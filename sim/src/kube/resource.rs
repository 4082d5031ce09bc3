//! The kinds the fake serves: the built-in [`Resource`]s and the interned
//! identities of CRD-defined ones ([`CustomKind`]).

use std::sync::Mutex;

use super::lock;

/// The kinds of objects the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Jobs,
    CronJobs,
    Pods,
    Events,
    Namespaces,
    /// coordination.k8s.io/v1 `leases`.
    Leases,
    /// apiextensions.k8s.io/v1 `customresourcedefinitions` (cluster-scoped).
    CustomResourceDefinitions,
    /// A resource a CustomResourceDefinition defines (its storage version);
    /// served only while that CRD exists (see [`FakeKube::install_crd`](super::FakeKube::install_crd)).
    Custom(CustomKind),
}

/// The identity of a CRD-defined resource: group, storage version, plural,
/// kind and scope. Interned process-wide (so that [`Resource`] stays `Copy`);
/// whether a given [`FakeKube`](super::FakeKube) serves it depends on its CRDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomKind(u32);

struct CustomDef {
    group: &'static str,
    api_version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

/// Every custom identity ever seen; bounded by the distinct CRDs installed.
static CUSTOM_DEFS: Mutex<Vec<&'static CustomDef>> = Mutex::new(Vec::new());

impl CustomKind {
    pub(super) fn intern(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
    ) -> Self {
        let mut defs = lock(&CUSTOM_DEFS);
        let api_version = format!("{group}/{version}");
        if let Some(i) = defs.iter().position(|d| {
            d.api_version == api_version
                && d.plural == plural
                && d.kind == kind
                && d.namespaced == namespaced
        }) {
            return CustomKind(i as u32);
        }
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        defs.push(Box::leak(Box::new(CustomDef {
            group: leak(group),
            api_version: leak(&api_version),
            plural: leak(plural),
            kind: leak(kind),
            namespaced,
        })));
        CustomKind((defs.len() - 1) as u32)
    }

    fn def(self) -> &'static CustomDef {
        lock(&CUSTOM_DEFS)[self.0 as usize]
    }
}

impl Resource {
    /// The built-in kinds (custom ones come and go with their CRDs).
    pub const ALL: [Resource; 7] = [
        Resource::Jobs,
        Resource::CronJobs,
        Resource::Pods,
        Resource::Events,
        Resource::Namespaces,
        Resource::Leases,
        Resource::CustomResourceDefinitions,
    ];

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Jobs => "jobs",
            Resource::CronJobs => "cronjobs",
            Resource::Pods => "pods",
            Resource::Events => "events",
            Resource::Namespaces => "namespaces",
            Resource::Leases => "leases",
            Resource::CustomResourceDefinitions => "customresourcedefinitions",
            Resource::Custom(c) => c.def().plural,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Jobs => "Job",
            Resource::CronJobs => "CronJob",
            Resource::Pods => "Pod",
            Resource::Events => "Event",
            Resource::Namespaces => "Namespace",
            Resource::Leases => "Lease",
            Resource::CustomResourceDefinitions => "CustomResourceDefinition",
            Resource::Custom(c) => c.def().kind,
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Resource::Jobs | Resource::CronJobs => "batch",
            Resource::Leases => "coordination.k8s.io",
            Resource::CustomResourceDefinitions => "apiextensions.k8s.io",
            Resource::Custom(c) => c.def().group,
            _ => "",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Jobs | Resource::CronJobs => "batch/v1",
            Resource::Leases => "coordination.k8s.io/v1",
            Resource::CustomResourceDefinitions => "apiextensions.k8s.io/v1",
            Resource::Custom(c) => c.def().api_version,
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        match self {
            Resource::Namespaces | Resource::CustomResourceDefinitions => false,
            Resource::Custom(c) => c.def().namespaced,
            _ => true,
        }
    }

    /// Whether a built-in kind has a `status` subresource (custom ones: see
    /// [`Store::has_status`](super::store::Store::has_status)).
    pub(super) fn builtin_has_status(self) -> bool {
        !matches!(
            self,
            Resource::Events | Resource::Leases | Resource::Custom(_)
        )
    }

    pub(super) fn is_custom(self) -> bool {
        matches!(self, Resource::Custom(_))
    }

    /// `jobs.batch`, `pods`: how Status messages name the resource.
    pub(super) fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    /// `Job.batch`, `Pod`: how validation errors name the kind.
    pub(super) fn qualified_kind(self) -> String {
        match self.group() {
            "" => self.kind().to_string(),
            g => format!("{}.{g}", self.kind()),
        }
    }

    /// A built-in resource by group and plural.
    pub(super) fn lookup(group: &str, plural: &str) -> Option<Resource> {
        Self::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }

    pub(super) fn max_name_len(self) -> usize {
        match self {
            // The Job name becomes the `job-name` label value.
            Resource::Jobs => 63,
            // The controller appends `-<minutes>` (11 chars) to make Job names.
            Resource::CronJobs => 52,
            Resource::Namespaces => 63,
            _ => 253,
        }
    }
}
