//! Who takes part: typed party ids, roles and the roster of a deployment.

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// A party's index in its deployment's [`Roster`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartyId(pub u16);

impl std::fmt::Display for PartyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "party {}", self.0)
    }
}

/// What a party does in SPNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The semi-honest server: runs the plaintext layers after the private one.
    Server,
    /// Data holder number `i` (0-based): owns some feature columns of every sample.
    Holder(u16),
    /// A separate dealer of correlated randomness (by default the server deals).
    Dealer,
}

impl Role {
    /// The name used in certificates and messages: `server`, `holder-0`, `dealer`.
    pub fn name(&self) -> String {
        match self {
            Self::Server => "server".into(),
            Self::Holder(i) => format!("holder-{i}"),
            Self::Dealer => "dealer".into(),
        }
    }

    /// Parses a name produced by [`Role::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "server" => Ok(Self::Server),
            "dealer" => Ok(Self::Dealer),
            _ => name
                .strip_prefix("holder-")
                .and_then(|i| i.parse().ok())
                .map(Self::Holder)
                .ok_or_else(|| NetError::Config(format!("unknown role name {name:?}"))),
        }
    }
}

/// The parties of a deployment, indexed by [`PartyId`]. Every party holds the same roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    roles: Vec<Role>,
}

impl Roster {
    /// A roster from roles in party-id order. Fails on duplicates or fewer than two parties.
    pub fn new(roles: Vec<Role>) -> Result<Self> {
        if roles.len() < 2 || roles.len() > u16::MAX as usize {
            return Err(NetError::Config(format!(
                "{} parties; need 2..=65535",
                roles.len()
            )));
        }
        for (i, r) in roles.iter().enumerate() {
            if roles[..i].contains(r) {
                return Err(NetError::Config(format!("role {} appears twice", r.name())));
            }
        }
        Ok(Self { roles })
    }

    /// The standard SPNN roster: the server (party 0), `holders` data holders (parties
    /// `1..=holders`) and, when `separate_dealer`, a dealer (the last party).
    pub fn spnn(holders: u16, separate_dealer: bool) -> Result<Self> {
        let mut roles = vec![Role::Server];
        roles.extend((0..holders).map(Role::Holder));
        if separate_dealer {
            roles.push(Role::Dealer);
        }
        Self::new(roles)
    }

    /// Number of parties.
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// Always false: a roster has at least two parties.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// All party ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = PartyId> + '_ {
        (0..self.roles.len() as u16).map(PartyId)
    }

    /// The role of `id`.
    pub fn role(&self, id: PartyId) -> Result<Role> {
        self.roles
            .get(id.0 as usize)
            .copied()
            .ok_or(NetError::UnknownPeer(id))
    }

    /// The party with role `role`.
    pub fn id_of(&self, role: Role) -> Result<PartyId> {
        self.roles
            .iter()
            .position(|r| *r == role)
            .map(|i| PartyId(i as u16))
            .ok_or_else(|| NetError::Config(format!("no {} in the roster", role.name())))
    }

    /// The name of `id` as used in certificates.
    pub fn name(&self, id: PartyId) -> Result<String> {
        Ok(self.role(id)?.name())
    }

    /// Data holders in holder order.
    pub fn holders(&self) -> Vec<PartyId> {
        let mut hs: Vec<(u16, PartyId)> = self
            .roles
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Role::Holder(h) => Some((*h, PartyId(i as u16))),
                _ => None,
            })
            .collect();
        hs.sort();
        hs.into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spnn_roster_has_server_holders_and_dealer() {
        let r = Roster::spnn(3, true).unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r.id_of(Role::Server).unwrap(), PartyId(0));
        assert_eq!(r.holders(), vec![PartyId(1), PartyId(2), PartyId(3)]);
        assert_eq!(r.name(PartyId(4)).unwrap(), "dealer");
        assert!(r.role(PartyId(5)).is_err());
        for id in r.ids() {
            let role = r.role(id).unwrap();
            assert_eq!(Role::from_name(&role.name()).unwrap(), role);
        }
        assert!(Role::from_name("holder-x").is_err());
        assert!(Roster::new(vec![Role::Server, Role::Server]).is_err());
        assert!(Roster::new(vec![Role::Server]).is_err());
    }
}
