//! The one authorization layer: "may this subject do this action on this resource?". Every
//! capability asks [`Subject::may`]; no handler checks roles itself. Deny unless a rule grants.
//!
//! Rules (the whole policy; documented in `docs/architecture.md`):
//! - The platform operator (the break-glass admin token) and `platform-admin`s may do anything.
//! - An agency's `agency-admin` grants and revokes that agency's roles (never `platform-admin`,
//!   never to themselves) and manages that agency's OpenID clients.
//! - `reviewer` reviews the agency's applications; `approver` reviews and approves; `signer` signs
//!   the agency's documents; `exchange-admin` administers its data exchange; `catalog-editor`
//!   edits its open-data catalog; `procedure-editor` publishes its procedures in the one-stop
//!   catalogue; any official of the agency may read its audit trail.
//! - Roles act only inside their own agency.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role an official holds in one agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    AgencyAdmin,
    Reviewer,
    Approver,
    Signer,
    ExchangeAdmin,
    CatalogEditor,
    ProcedureEditor,
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::AgencyAdmin,
        Role::Reviewer,
        Role::Approver,
        Role::Signer,
        Role::ExchangeAdmin,
        Role::CatalogEditor,
        Role::ProcedureEditor,
        Role::PlatformAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::AgencyAdmin => "agency-admin",
            Role::Reviewer => "reviewer",
            Role::Approver => "approver",
            Role::Signer => "signer",
            Role::ExchangeAdmin => "exchange-admin",
            Role::CatalogEditor => "catalog-editor",
            Role::ProcedureEditor => "procedure-editor",
            Role::PlatformAdmin => "platform-admin",
        }
    }

    pub fn title(self) -> saphan_core::Text {
        use saphan_core::Text;
        match self {
            Role::AgencyAdmin => Text::new("ผู้ดูแลหน่วยงาน", "Agency administrator"),
            Role::Reviewer => Text::new("ผู้ตรวจสอบคำขอ", "Reviewer"),
            Role::Approver => Text::new("ผู้อนุมัติ", "Approver"),
            Role::Signer => Text::new("ผู้ลงนาม", "Signer"),
            Role::ExchangeAdmin => Text::new("ผู้ดูแลการแลกเปลี่ยนข้อมูล", "Exchange administrator"),
            Role::CatalogEditor => Text::new("ผู้แก้ไขบัญชีข้อมูล", "Catalog editor"),
            Role::ProcedureEditor => Text::new("ผู้แก้ไขคู่มือกระบวนงาน", "Procedure editor"),
            Role::PlatformAdmin => Text::new("ผู้ดูแลแพลตฟอร์ม", "Platform administrator"),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role (agency-admin, reviewer, approver, signer, exchange-admin, catalog-editor, procedure-editor, platform-admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.chars().take(40).collect()))
    }
}

/// Something a subject may try to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Grant or revoke this role.
    GrantRole(Role),
    ManageClients,
    ReviewApplications,
    ApproveApplications,
    SignDocuments,
    AdministerExchange,
    EditCatalog,
    EditProcedures,
    ReadAudit,
}

impl Action {
    /// A stable name for audit records and error messages.
    pub fn name(&self) -> String {
        match self {
            Action::GrantRole(role) => format!("grant-role:{role}"),
            Action::ManageClients => "manage-clients".into(),
            Action::ReviewApplications => "review-applications".into(),
            Action::ApproveApplications => "approve-applications".into(),
            Action::SignDocuments => "sign-documents".into(),
            Action::AdministerExchange => "administer-exchange".into(),
            Action::EditCatalog => "edit-catalog".into(),
            Action::EditProcedures => "edit-procedures".into(),
            Action::ReadAudit => "read-audit".into(),
        }
    }
}

/// What an action is done to. Capabilities name their resources by the agency that owns them;
/// the platform itself (its keys, its operators) is its own resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Platform,
    Agency(String),
    /// A person's identity (e.g. when granting them a role), with the agency the act concerns.
    Identity {
        id: String,
        agency: String,
    },
}

impl Resource {
    fn agency(&self) -> Option<&str> {
        match self {
            Resource::Platform => None,
            Resource::Agency(a) => Some(a),
            Resource::Identity { agency, .. } => Some(agency),
        }
    }
}

/// A role held in an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRole {
    pub agency: String,
    pub role: Role,
}

/// Who is asking, with what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The holder of the admin token: bootstrap and break-glass.
    Operator,
    /// A signed-in person, with the roles they hold (possibly none).
    Person {
        identity_id: String,
        roles: Vec<AgencyRole>,
    },
}

impl Subject {
    /// The audit actor name.
    pub fn actor(&self) -> String {
        match self {
            Subject::Operator => "operator".into(),
            Subject::Person { identity_id, .. } => format!("identity:{identity_id}"),
        }
    }

    /// Whether the subject itself holds a role that permits `action` in `agency`, whatever
    /// else it may do. Decisions on people's applications need this: the operator and platform
    /// administrators run the platform, they do not grant an agency's licences.
    pub fn acts_for_agency(&self, action: &Action, agency: &str) -> bool {
        match self {
            Subject::Operator => false,
            Subject::Person { roles, .. } => roles
                .iter()
                .filter(|r| r.agency == agency)
                .any(|r| role_permits(r.role, action)),
        }
    }

    pub fn may(&self, action: &Action, resource: &Resource) -> bool {
        let roles = match self {
            Subject::Operator => return true,
            Subject::Person { roles, .. } => roles,
        };
        if roles.iter().any(|r| r.role == Role::PlatformAdmin) {
            return true;
        }
        let Some(agency) = resource.agency() else {
            return false;
        };
        if let (
            Action::GrantRole(_),
            Resource::Identity { id, .. },
            Subject::Person { identity_id, .. },
        ) = (action, resource, self)
        {
            if id == identity_id {
                return false;
            }
        }
        roles
            .iter()
            .filter(|r| r.agency == agency)
            .any(|r| role_permits(r.role, action))
    }
}

fn role_permits(role: Role, action: &Action) -> bool {
    match action {
        Action::GrantRole(granted) => role == Role::AgencyAdmin && *granted != Role::PlatformAdmin,
        Action::ManageClients => role == Role::AgencyAdmin,
        Action::ReviewApplications => matches!(role, Role::Reviewer | Role::Approver),
        Action::ApproveApplications => role == Role::Approver,
        Action::SignDocuments => role == Role::Signer,
        Action::AdministerExchange => role == Role::ExchangeAdmin,
        Action::EditCatalog => role == Role::CatalogEditor,
        Action::EditProcedures => role == Role::ProcedureEditor,
        Action::ReadAudit => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, roles: &[(&str, Role)]) -> Subject {
        Subject::Person {
            identity_id: id.into(),
            roles: roles
                .iter()
                .map(|(agency, role)| AgencyRole {
                    agency: (*agency).into(),
                    role: *role,
                })
                .collect(),
        }
    }

    fn agency(a: &str) -> Resource {
        Resource::Agency(a.into())
    }

    #[test]
    fn deny_unless_granted() {
        let citizen = person("c", &[]);
        for action in [
            Action::ManageClients,
            Action::ReadAudit,
            Action::GrantRole(Role::Reviewer),
            Action::SignDocuments,
        ] {
            assert!(!citizen.may(&action, &agency("dopa")));
            assert!(!citizen.may(&action, &Resource::Platform));
        }
    }

    #[test]
    fn roles_act_only_in_their_agency() {
        let reviewer = person("r", &[("dopa", Role::Reviewer)]);
        assert!(reviewer.may(&Action::ReviewApplications, &agency("dopa")));
        assert!(!reviewer.may(&Action::ReviewApplications, &agency("dbd")));
        assert!(!reviewer.may(&Action::ApproveApplications, &agency("dopa")));
        let approver = person("a", &[("dopa", Role::Approver)]);
        assert!(approver.may(&Action::ReviewApplications, &agency("dopa")));
        assert!(approver.may(&Action::ApproveApplications, &agency("dopa")));
        assert!(!approver.may(&Action::SignDocuments, &agency("dopa")));
        assert!(!approver.may(&Action::ReadAudit, &Resource::Platform));
    }

    #[test]
    fn agency_admins_grant_their_agency_roles_but_not_platform_admin_nor_to_themselves() {
        let admin = person("adm", &[("dopa", Role::AgencyAdmin)]);
        let someone = |agency: &str| Resource::Identity {
            id: "other".into(),
            agency: agency.into(),
        };
        assert!(admin.may(&Action::GrantRole(Role::Signer), &someone("dopa")));
        assert!(admin.may(&Action::GrantRole(Role::AgencyAdmin), &someone("dopa")));
        assert!(!admin.may(&Action::GrantRole(Role::PlatformAdmin), &someone("dopa")));
        assert!(!admin.may(&Action::GrantRole(Role::Signer), &someone("dbd")));
        let myself = Resource::Identity {
            id: "adm".into(),
            agency: "dopa".into(),
        };
        assert!(!admin.may(&Action::GrantRole(Role::Signer), &myself));
        assert!(admin.may(&Action::ManageClients, &agency("dopa")));
        assert!(!admin.may(&Action::ManageClients, &agency("dbd")));
    }

    #[test]
    fn operator_and_platform_admins_may_do_anything() {
        let platform = person("p", &[("dga", Role::PlatformAdmin)]);
        for subject in [Subject::Operator, platform] {
            assert!(subject.may(&Action::GrantRole(Role::PlatformAdmin), &agency("dopa")));
            assert!(subject.may(&Action::ReadAudit, &Resource::Platform));
        }
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
